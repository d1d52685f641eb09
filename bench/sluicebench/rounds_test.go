package main

import (
	"strings"
	"testing"
	"time"
)

// TestRatioTargetsTakeTheMedianOfRounds: a ratio target compares cases
// within each round (the matrix and the -rounds after it) and is judged
// by the median; a round whose reference case failed does not count.
func TestRatioTargetsTakeTheMedianOfRounds(t *testing.T) {
	res := func(sink, stages string, rate, kernelLost float64) synthResult {
		return synthResult{Sink: sink, Size: 64, Stages: stages, EventsPerSec: rate, KernelLostPct: kernelLost}
	}
	rep := report{
		Synthetic: []synthResult{res("raw", "", 1000, 50), res("null", "", 600, 60), res("null", "c1", 540, 60), res("stdout", "", 400, 70)},
		Rounds: [][]synthResult{
			{res("raw", "", 1000, 20), res("null", "", 800, 60), res("null", "c1", 720, 60), res("stdout", "", 480, 70)},
			{res("raw", "", 1000, 50), res("null", "", 750, 60), res("null", "c1", 600, 60), res("stdout", "", 550, 70)},
			// The raw reader failed: no ratio to it this round.
			{{Sink: "raw", Size: 64, Error: "boom"}, res("null", "", 990, 60), res("stdout", "", 990, 70)},
		},
	}
	rep.finish(time.Second)
	got := map[string]target{}
	for _, tg := range rep.Targets {
		got[tg.Name] = tg
	}
	check := func(name string, value float64, met bool, text string) {
		t.Helper()
		tg, ok := got[name]
		if !ok {
			t.Fatalf("no target %q among %v", name, rep.Targets)
		}
		if d := tg.Value - value; d > 1e-9 || d < -1e-9 || tg.Met != met || !strings.Contains(tg.Got, text) {
			t.Errorf("%s: value %v met %v %q, want %v met %v containing %q", name, tg.Value, tg.Met, tg.Got, value, met, text)
		}
	}
	check("synthetic 64B to a null sink, of the raw reader", 0.75, true, "75%, the median of 3 rounds: 60%, 80%, 75%")
	check("synthetic 64B to a null sink, of the raw reader", 0.75, true, "in 1 of 3 rounds the raw reader lost only 20% in the kernel")
	check("synthetic 64B to stdout JSON in a file, of the raw reader", 0.48, false, "48%, the median of 3 rounds: 40%, 48%, 55%")
	// No rawjson ran: no CPU budget.
	if tg := got["synthetic 64B to stdout JSON in a file, of the raw reader"]; strings.Contains(tg.Got, "allows") {
		t.Errorf("a CPU budget without rawjson: %q", tg.Got)
	}
	// c1 of none: 90%, 90%, 80%; the last round has no c1.
	check("synthetic 64B null sink with one C filter, of without", 0.90, true, "90%, the median of 3 rounds: 90%, 90%, 80%")
	if s := findSynth(rep.Rounds[1], "null", 64, "c1"); s == nil || s.OfNoStage != 0.8 || s.OfRaw != 0.6 {
		t.Errorf("round 3's null/c1: %+v, want its ratios within its round (0.8 of none, 0.6 of raw)", s)
	}
	md := rep.markdown()
	if !strings.Contains(md, "| null/64B/c1 | 540, 0 ns, 90% | 720, 0 ns, 90% | 600, 0 ns, 80% | failed |") {
		t.Errorf("the rounds table lacks null/64B/c1's rounds:\n%s", md)
	}
	if m := medianOf([]float64{0.4, 0.9, 0.5, 0.6}); m != 0.55 {
		t.Errorf("median of an even count: %v, want the mean of the middle two, 0.55", m)
	}
}

// TestJSONTargetsStateTheirCPUBudget: the JSON-into-a-file targets say
// what CPU per event their share of the raw reader allows at the CPU the
// agent had in each round, beside what the sink, rawjson and rawcodec
// spent, and how far rawcodec got.
func TestJSONTargetsStateTheirCPUBudget(t *testing.T) {
	res := func(sink string, rate, cpu float64) synthResult {
		return synthResult{Sink: sink, Size: 64, EventsPerSec: rate, CPUPerEvent: cpu, KernelLostPct: 50}
	}
	rep := report{
		// 0.8 CPU in each round: 1M events/s at 800 ns, 1.6M at 500.
		Synthetic: []synthResult{res("raw", 4e6, 150), res("rawjson", 2e6, 400), res("rawcodec", 1.6e6, 500), res("stdout", 1e6, 800)},
		Rounds: [][]synthResult{
			{res("raw", 3.2e6, 160), res("rawjson", 1.6e6, 500), res("stdout", 1.6e6, 500)},
			{res("raw", 3.2e6, 170), res("rawjson", 1.7e6, 450), res("rawcodec", 1.2e6, 600), res("stdout", 0.8e6, 1000)},
		},
	}
	rep.finish(time.Second)
	for _, tg := range rep.Targets {
		if tg.Name != "synthetic 64B to stdout JSON in a file, of the raw reader" {
			continue
		}
		// Budgets 0.8e9/2e6 = 400, 0.8e9/1.6e6 = 500, 500; spent 800, 500, 1000; rawjson 400, 500, 450;
		// rawcodec 500, 600 (it did not run in the first round).
		want := "at the 0.80 CPU the agent had, 50% allows 500 ns/event; it spent 800, rawjson 450, rawcodec 550"
		if !strings.Contains(tg.Got, want) {
			t.Errorf("got %q, want it to contain %q", tg.Got, want)
		}
		// Rates of the raw reader: rawcodec 40% and 37.5%.
		if want := "that reader with sluice's BTF decoder and JSON encoder, rawcodec: 39%, the median of 40%, 38%"; !strings.Contains(tg.Got, want) {
			t.Errorf("got %q, want it to contain %q", tg.Got, want)
		}
		return
	}
	t.Fatalf("no stdout target among %v", rep.Targets)
}

// TestWithMaxProcs: -max-procs goes into the agent block of every config
// the bench starts an agent on, or a block of its own when it has none.
func TestWithMaxProcs(t *testing.T) {
	got := withMaxProcs("agent {\n  log_level = \"warn\"\n}\nsink \"null\" \"out\" {}\n", 1)
	if want := "agent {\n  max_procs = 1\n  log_level = \"warn\"\n}\nsink \"null\" \"out\" {}\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	got = withMaxProcs("sink \"null\" \"out\" {}\n", 2)
	if want := "agent {\n  max_procs = 2\n}\nsink \"null\" \"out\" {}\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestTraceOpenTargetTakesTheMedianOfRuns: trace_open's absolute target is
// judged by the median of its runs that did not fail, each run listed.
func TestTraceOpenTargetTakesTheMedianOfRuns(t *testing.T) {
	run := func(cpu float64) traceOpenResult {
		return traceOpenResult{Opens: 2e6, OpensPerSec: 200e3, Delivered: 2e6, DeliveredPct: 100, CPUPerEvent: cpu}
	}
	first := run(1740)
	rep := report{TraceOpen: &first, TraceOpenRounds: []traceOpenResult{run(1290), {Error: "boom"}, run(1450)}}
	rep.finish(time.Second)
	var tg *target
	for i := range rep.Targets {
		if rep.Targets[i].Name == "trace_open to stdout JSON, agent CPU per event" {
			tg = &rep.Targets[i]
		}
	}
	if tg == nil {
		t.Fatalf("no trace_open target among %v", rep.Targets)
	}
	if want := "1.45 µs, the median of 3 runs: 1.74, 1.29, 1.45 µs"; tg.Value != 1450 || !tg.Met || !strings.Contains(tg.Got, want) {
		t.Errorf("got value %v met %v %q, want 1450, met, containing %q", tg.Value, tg.Met, tg.Got, want)
	}
	md := rep.markdown()
	for _, want := range []string{"| 1 | 200k | 100.0% (2000000 of 2000000) | 0 | 1.74 µs |", "| 3 | failed: boom |", "| 4 | 200k |"} {
		if !strings.Contains(md, want) {
			t.Errorf("the trace_open table lacks %q:\n%s", want, md)
		}
	}
	// One run that failed and none other: no target.
	rep = report{TraceOpen: &traceOpenResult{Error: "boom"}}
	rep.finish(time.Second)
	for _, tg := range rep.Targets {
		if strings.HasPrefix(tg.Name, "trace_open") {
			t.Errorf("a target from a failed run: %+v", tg)
		}
	}
}
