package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// stageBench is one row of the built-in stages' Go benchmark
// (BenchmarkExampleStages and BenchmarkRealisticExec in stages/): the
// stage through the real host, per event at batch 256.
type stageBench struct {
	Name          string  `json:"name"`
	NsPerEvent    float64 `json:"ns_per_event"`
	CPUNsPerEvent float64 `json:"cpu_ns_per_event"`
	BytesPerOp    float64 `json:"bytes_per_op"`
	AllocsPerOp   float64 `json:"allocs_per_op"`
}

// stagesResult is the built-in stages part of a run.
type stagesResult struct {
	Command string       `json:"command"`
	Rows    []stageBench `json:"rows"`
	Error   string       `json:"error,omitempty"`
}

// stageBenchArgs is the go test command the part runs, from the
// repository root.
var stageBenchArgs = []string{"test", "-run", "^$", "-bench", "ExampleStages|RealisticExec", "-benchmem", "-benchtime", "0.2s", "-count", "3", "./stages"}

// runStages runs the built-in stages' Go benchmark. Its figures are the
// calling thread's per event: they compare with each other, not with the
// agent's CPU per event above (which counts every thread).
func (e *benchEnv) runStages() stagesResult {
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	r := stagesResult{Command: "go " + strings.Join(quoteArgs(stageBenchArgs), " ")}
	cmd := exec.Command(goBin, stageBenchArgs...)
	cmd.Dir = e.root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		r.Error = fmt.Sprintf("%s: %v: %s", r.Command, err, lastLines(string(out)+stderr.String(), 5))
		return r
	}
	r.Rows = medianRows(parseStageBench(out))
	if len(r.Rows) == 0 {
		r.Error = fmt.Sprintf("%s printed no benchmark rows", r.Command)
	}
	return r
}

// parseStageBench reads the rows of go test -bench output: the name
// without the Benchmark prefix and the -N suffix, and the metrics the
// stages benchmarks report.
func parseStageBench(out []byte) []stageBench {
	var rows []stageBench
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		row := stageBench{Name: name}
		// After the name and the iteration count: value-unit pairs.
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/event":
				row.NsPerEvent = v
			case "cpu-ns/event":
				row.CPUNsPerEvent = v
			case "B/op":
				row.BytesPerOp = v
			case "allocs/op":
				row.AllocsPerOp = v
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// medianRows folds the rows of repeated runs (-count) into one per name,
// in first-seen order, each metric the median of its runs: one run
// disturbed by the shared machine does not decide a target.
func medianRows(rows []stageBench) []stageBench {
	var names []string
	runs := map[string][]stageBench{}
	for _, r := range rows {
		if _, ok := runs[r.Name]; !ok {
			names = append(names, r.Name)
		}
		runs[r.Name] = append(runs[r.Name], r)
	}
	out := make([]stageBench, 0, len(names))
	for _, name := range names {
		rs := runs[name]
		med := func(v func(stageBench) float64) float64 {
			xs := make([]float64, len(rs))
			for i, r := range rs {
				xs[i] = v(r)
			}
			slices.Sort(xs)
			if n := len(xs); n%2 == 0 {
				return (xs[n/2-1] + xs[n/2]) / 2
			}
			return xs[len(xs)/2]
		}
		out = append(out, stageBench{Name: name,
			NsPerEvent:    med(func(r stageBench) float64 { return r.NsPerEvent }),
			CPUNsPerEvent: med(func(r stageBench) float64 { return r.CPUNsPerEvent }),
			BytesPerOp:    med(func(r stageBench) float64 { return r.BytesPerOp }),
			AllocsPerOp:   med(func(r stageBench) float64 { return r.AllocsPerOp }),
		})
	}
	return out
}

// row returns the row of that name, nil if none.
func (r *stagesResult) row(name string) *stageBench {
	for i := range r.Rows {
		if r.Rows[i].Name == name {
			return &r.Rows[i]
		}
	}
	return nil
}

// stageTargets are issue 16's: each built-in stage at batch 256, in
// ns per event or as a multiple of its C twin.
func (r *report) stageTargets() {
	s := r.Stages
	if s == nil || s.Error != "" {
		return
	}
	// cpu-ns/event: the calling thread's CPU, which a shared machine
	// disturbs less than wall time.
	cost := func(name string) float64 {
		if row := s.row(name); row != nil {
			if row.CPUNsPerEvent > 0 {
				return row.CPUNsPerEvent
			}
			return row.NsPerEvent
		}
		return 0
	}
	abs := func(stage, bench string, max float64) {
		if v := cost(bench); v > 0 {
			r.Targets = append(r.Targets, target{Name: "built-in stage " + stage + ", per event at batch 256", Want: fmt.Sprintf("<= %.0f ns", max),
				Got: fmt.Sprintf("%.0f ns", v), Value: v, Met: v <= max})
		}
	}
	twin := func(stage, c string) {
		g, cv := cost("ExampleStages/"+stage+"/batch=256"), cost("ExampleStages/"+c+"/batch=256")
		if g > 0 && cv > 0 {
			x := g / cv
			r.Targets = append(r.Targets, target{Name: "built-in stage " + stage + ", of its C twin " + c, Want: "<= 3x",
				Got: fmt.Sprintf("%.1fx (%.0f vs %.0f ns)", x, g, cv), Value: x, Met: x <= 3})
		}
	}
	abs("drop-comm", "ExampleStages/drop-comm/batch=256", 150)
	twin("drop-comm-go", "drop-comm")
	abs("uid-to-user", "ExampleStages/uid-to-user/batch=256", 300)
	twin("uid-to-user-go", "uid-to-user")
	abs("rate-limit", "ExampleStages/rate-limit/batch=256", 500)
	abs("redact", "ExampleStages/redact/batch=256", 1000)
	abs("ocsf", "ExampleStages/ocsf/batch=256", 1500)
}

// quoteArgs quotes the arguments a shell would split or expand.
func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "^$|* ") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return out
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}
