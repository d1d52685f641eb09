package main

import (
	"strings"
	"testing"
)

// TestStageBenchTargets: rows parsed from go test's output become issue
// 16's targets, judged by the thread's CPU per event.
func TestStageBenchTargets(t *testing.T) {
	out := `goos: linux
BenchmarkExampleStages/drop-comm/batch=256-2         	    4300	     25749 ns/op	        96.39 cpu-ns/event	       100.6 ns/event	       0 B/op	       0 allocs/op
BenchmarkExampleStages/drop-comm-go/batch=256-2      	    2836	     41856 ns/op	       330.0 cpu-ns/event	       331.5 ns/event	       0 B/op	       0 allocs/op
BenchmarkExampleStages/uid-to-user/batch=256-2       	    2836	     41856 ns/op	       140.0 cpu-ns/event	       141.5 ns/event	       0 B/op	       0 allocs/op
BenchmarkExampleStages/uid-to-user/batch=256-2       	    2836	     41856 ns/op	       900.0 cpu-ns/event	       941.5 ns/event	       0 B/op	       0 allocs/op
BenchmarkExampleStages/uid-to-user/batch=256-2       	    2836	     41856 ns/op	       150.0 cpu-ns/event	       151.5 ns/event	       0 B/op	       0 allocs/op
BenchmarkExampleStages/redact/batch=256-2            	    123	    941944 ns/op	      1200 cpu-ns/event	      1300 ns/event	    3485 B/op	       1 allocs/op
BenchmarkRealisticExec/redact-2                      	     123	    941944 ns/op	 125.06 MB/s	      3677 cpu-ns/event	      3679 ns/event	    3485 B/op	       1 allocs/op
PASS
`
	s := stagesResult{Rows: medianRows(parseStageBench([]byte(out)))}
	if len(s.Rows) != 5 {
		t.Fatalf("parsed %d rows, want 5: %+v", len(s.Rows), s.Rows)
	}
	if r := s.row("ExampleStages/uid-to-user/batch=256"); r == nil || r.CPUNsPerEvent != 150 {
		t.Errorf("uid-to-user over three runs: %+v, want the median, 150 CPU ns/event", r)
	}
	if r := s.row("RealisticExec/redact"); r == nil || r.CPUNsPerEvent != 3677 || r.NsPerEvent != 3679 || r.BytesPerOp != 3485 || r.AllocsPerOp != 1 {
		t.Errorf("RealisticExec/redact: %+v", r)
	}
	rep := report{Stages: &s}
	rep.stageTargets()
	met := map[string]bool{}
	for _, tg := range rep.Targets {
		met[strings.TrimPrefix(tg.Name, "built-in stage ")] = tg.Met
	}
	want := map[string]bool{
		"drop-comm, per event at batch 256":     true,
		"drop-comm-go, of its C twin drop-comm": false, // 3.4x
		"uid-to-user, per event at batch 256":   true,
		"redact, per event at batch 256":        false,
	}
	if len(met) != len(want) {
		t.Errorf("targets %v, want %v (no row, no target)", met, want)
	}
	for name, w := range want {
		if got, ok := met[name]; !ok || got != w {
			t.Errorf("target %q met = %v (present %v), want %v", name, got, ok, w)
		}
	}
}
