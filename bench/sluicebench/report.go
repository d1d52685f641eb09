package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// report is everything one `make bench` measured, as latest.json holds it.
type report struct {
	Commit    string        `json:"commit"`
	Dirty     bool          `json:"dirty"`
	Date      string        `json:"date"`
	Kernel    string        `json:"kernel"`
	Cores     int           `json:"cores"`
	CPU       string        `json:"cpu"`
	LoadAvg   string        `json:"loadavg_at_start"`
	Quick     bool          `json:"quick"`
	MaxProcs  int           `json:"agent_max_procs,omitempty"` // -max-procs; 0: the default
	WindowS   float64       `json:"window_seconds"`
	TookS     float64       `json:"took_seconds"`
	Synthetic []synthResult `json:"synthetic"`
	// Rounds are the ratio targets' cases run again after the matrix
	// (-rounds), one slice per round from the second: the targets that
	// compare them take the median of the rounds, the matrix included.
	Rounds    [][]synthResult  `json:"more_rounds,omitempty"`
	TraceOpen *traceOpenResult `json:"trace_open,omitempty"`
	// TraceOpenRounds are trace_open's runs after the first (-rounds):
	// its target is the median CPU per event of them all.
	TraceOpenRounds []traceOpenResult `json:"trace_open_more_rounds,omitempty"`
	Startup         []startupResult   `json:"startup,omitempty"`
	Memory          *memoryResult     `json:"memory_default_config,omitempty"`
	JetStream       *jetStreamResult  `json:"jetstream,omitempty"`
	Stages          *stagesResult     `json:"builtin_stages,omitempty"`
	// DiskMBps is what the scratch directory's disk writes with
	// fdatasync (measureDisk): the file sink's sustained bound.
	DiskMBps float64  `json:"disk_fdatasync_mb_per_s,omitempty"`
	Targets  []target `json:"targets"`
}

// target is one of issue 12's goals as this run measured it.
type target struct {
	Name  string  `json:"name"`
	Want  string  `json:"want"`
	Got   string  `json:"got"`
	Value float64 `json:"value"`
	Met   bool    `json:"met"`
}

func newReport(env *benchEnv, quick bool) *report {
	r := &report{Date: time.Now().UTC().Format(time.RFC3339), Cores: runtime.NumCPU(), Quick: quick, MaxProcs: agentMaxProcs, WindowS: env.window.Seconds()}
	if out, err := exec.Command("git", "-C", env.root, "rev-parse", "HEAD").Output(); err == nil {
		r.Commit = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("git", "-C", env.root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
		r.Dirty = len(bytes.TrimSpace(out)) > 0
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		r.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				r.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			r.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return r
}

func (r *report) synth(sink string, size int, stages string) *synthResult {
	return findSynth(r.Synthetic, sink, size, stages)
}

// findSynth returns the result of a case that ran without error among
// results, or nil.
func findSynth(results []synthResult, sink string, size int, stages string) *synthResult {
	for i := range results {
		s := &results[i]
		if s.Sink == sink && s.Size == size && s.Stages == stages && s.Error == "" {
			return s
		}
	}
	return nil
}

// setRatios computes each result's ratios to the raw reader and to the
// same sink without stages within one round.
func setRatios(results []synthResult) {
	for i := range results {
		s := &results[i]
		if raw := findSynth(results, "raw", s.Size, ""); raw != nil && s.Error == "" && raw.EventsPerSec > 0 {
			s.OfRaw = s.EventsPerSec / raw.EventsPerSec
		}
		if s.Stages != "" && s.Error == "" {
			if none := findSynth(results, s.Sink, s.Size, ""); none != nil && none.EventsPerSec > 0 {
				s.OfNoStage = s.EventsPerSec / none.EventsPerSec
			}
		}
	}
}

// byRound returns the ratio v of the case in each round where it ran
// (the matrix first), skipping rounds where v is 0 (its reference did
// not run).
func (r *report) byRound(sink string, size int, stages string, v func(*synthResult) float64) []float64 {
	var out []float64
	for _, results := range append([][]synthResult{r.Synthetic}, r.Rounds...) {
		if s := findSynth(results, sink, size, stages); s != nil && v(s) > 0 {
			out = append(out, v(s))
		}
	}
	return out
}

// medianOf is the median of shares xs, which is not empty; the mean of
// the middle two of an even count.
func medianOf(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// finish computes the ratios within the run and checks the targets.
func (r *report) finish(took time.Duration) {
	r.TookS = took.Seconds()
	setRatios(r.Synthetic)
	for _, results := range r.Rounds {
		setRatios(results)
	}
	ratio := func(name, want string, min float64, sink string, size int, stages string, v func(*synthResult) float64, notes ...string) {
		xs := r.byRound(sink, size, stages, v)
		if len(xs) == 0 {
			return
		}
		x := medianOf(xs)
		got := fmt.Sprintf("%.0f%%", 100*x)
		if len(xs) > 1 {
			got = fmt.Sprintf("%s, the median of %d rounds: %s", got, len(xs), fmtPcts(xs))
		}
		if n := strings.Join(slices.DeleteFunc(notes, func(n string) bool { return n == "" }), "; "); n != "" {
			got += " (" + n + ")"
		}
		r.Targets = append(r.Targets, target{Name: name, Want: want, Got: got, Value: x, Met: x >= min})
	}
	if tg, ok := r.traceOpenTarget(); ok {
		r.Targets = append(r.Targets, tg)
	}
	if m := r.Memory; m != nil && m.Error == "" {
		r.Targets = append(r.Targets, target{Name: fmt.Sprintf("RSS of the default config after %.0fs of activity", m.Seconds), Want: "<= 60 MB",
			Got: fmt.Sprintf("%.1f MB", m.RSSMB), Value: m.RSSMB, Met: m.RSSMB <= 60})
	}
	if j := r.JetStream; j != nil && j.Error == "" {
		r.Targets = append(r.Targets, target{Name: "JetStream sink as the built-in config has it (async acks, 100 events per message), of a synchronous publish loop", Want: ">= 10x",
			Got: fmt.Sprintf("%.1fx (by round: %s); one event per message %.1fx, %.0f%% of nats.go's async loop (%.1fx; bound %.1fx on this machine)",
				j.SinkBatchedOfSync, joinRatios(j.SinkBatchedOfSyncRounds), j.SinkOfSync, 100*j.SinkOfBare, j.BareOfSync, j.AsyncBound),
			Value: j.SinkBatchedOfSync, Met: j.SinkBatchedOfSync >= 10 && slices.Min(append([]float64{j.SinkBatchedOfSync}, j.SinkBatchedOfSyncRounds...)) >= 10})
	}
	r.stageTargets()
	for _, size := range []int{64, 256} {
		ofRaw := func(s *synthResult) float64 { return s.OfRaw }
		ofNone := func(s *synthResult) float64 { return s.OfNoStage }
		ref, raw := r.jsonRefNote(size), r.rawLimitNote(size)
		ratio(fmt.Sprintf("synthetic %dB to a null sink, of the raw reader", size), ">= 70%", 0.70, "null", size, "", ofRaw, raw)
		ratio(fmt.Sprintf("synthetic %dB to stdout JSON in a file, of the raw reader", size), ">= 50%", 0.50, "stdout", size, "", ofRaw, raw, ref, r.cpuBudgetNote("stdout", size, 0.50))
		ratio(fmt.Sprintf("synthetic %dB to a JSON file sink, of the raw reader", size), ">= 50%", 0.50, "file", size, "", ofRaw, raw, ref, r.cpuBudgetNote("file", size, 0.50), r.diskNote(size, 0.50))
		ratio(fmt.Sprintf("synthetic %dB null sink with one C filter, of without", size), ">= 85%", 0.85, "null", size, "c1", ofNone, r.stageBudgetNote(size, 0.85))
		ratio(fmt.Sprintf("synthetic %dB JSON file with one C filter, of without", size), ">= 85%", 0.85, "file", size, "c1", ofNone)
	}
}

// traceOpenTarget judges trace_open's CPU per event by the median of its
// runs that did not fail, each run's figure beside it.
func (r *report) traceOpenTarget() (target, bool) {
	var runs []traceOpenResult
	if r.TraceOpen != nil {
		runs = append(runs, *r.TraceOpen)
	}
	runs = slices.DeleteFunc(append(runs, r.TraceOpenRounds...), func(t traceOpenResult) bool { return t.Error != "" || t.CPUPerEvent == 0 })
	if len(runs) == 0 {
		return target{}, false
	}
	var cpus, delivered, rates []float64
	for _, t := range runs {
		cpus = append(cpus, t.CPUPerEvent)
		delivered = append(delivered, t.DeliveredPct)
		rates = append(rates, t.OpensPerSec)
	}
	x := medianOf(cpus)
	got := fmt.Sprintf("%.2f µs (%.0f%% of %s opens/s delivered)", x/1000, medianOf(delivered), fmtRate(medianOf(rates)))
	if len(runs) > 1 {
		each := make([]string, len(cpus))
		for i, c := range cpus {
			each[i] = fmt.Sprintf("%.2f", c/1000)
		}
		got = fmt.Sprintf("%.2f µs, the median of %d runs: %s µs (%.0f%% of %s opens/s delivered, medians)", x/1000, len(runs), strings.Join(each, ", "), medianOf(delivered), fmtRate(medianOf(rates)))
	}
	return target{Name: "trace_open to stdout JSON, agent CPU per event", Want: "<= 1.5 µs", Got: got, Value: x, Met: x <= 1500}, true
}

// rawLimitNote warns, or returns "", when the raw reader nearly kept up
// with the producer: its rate is then the producer's (slowed by the
// machine's other tenants), not the reader's ceiling, and the ratios to
// it overstate. In runs where the reader is the limit it loses 40-70% of
// the records in the kernel.
func (r *report) rawLimitNote(size int) string {
	lost := r.byRound("raw", size, "", func(s *synthResult) float64 { return s.KernelLostPct + 1e-9 })
	var low []string
	for _, l := range lost {
		if l < 30 {
			low = append(low, fmt.Sprintf("%.0f%%", l))
		}
	}
	switch {
	case len(low) == 0:
		return ""
	case len(lost) == 1:
		return fmt.Sprintf("the raw reader lost only %s in the kernel: it nearly kept up with the producer, so this ratio overstates", low[0])
	}
	return fmt.Sprintf("in %d of %d rounds the raw reader lost only %s in the kernel: it nearly kept up with the producer, so those rounds' ratios overstate", len(low), len(lost), strings.Join(low, ", "))
}

// jsonRefNote is how far toward the JSON targets a program written for
// the synthetic record alone gets (rawjson: jsonLineWriter), and the same
// program rendering with sluice's decoder and encoder (rawcodec), or "".
func (r *report) jsonRefNote(size int) string {
	var notes []string
	for _, ref := range []struct{ sink, what string }{
		{"rawjson", "a reader written for this record alone, rawjson"},
		{"rawcodec", "that reader with sluice's BTF decoder and JSON encoder, rawcodec"},
	} {
		xs := r.byRound(ref.sink, size, "", func(s *synthResult) float64 { return s.OfRaw })
		switch len(xs) {
		case 0:
		case 1:
			notes = append(notes, fmt.Sprintf("%s: %.0f%%", ref.what, 100*xs[0]))
		default:
			notes = append(notes, fmt.Sprintf("%s: %.0f%%, the median of %s", ref.what, 100*medianOf(xs), fmtPcts(xs)))
		}
	}
	return strings.Join(notes, "; ")
}

// cpuBudgetNote is the CPU per event the sink's case may spend to reach
// share of the raw reader's rate, beside what it, rawjson and rawcodec
// spent, or "". Against the producer's threads the agent gets a share of
// the machine that does not depend on how it spends it (events/s times
// CPU per event is about 0.8 of a CPU in every configuration, rawjson's
// too), so a rate target is a CPU-per-event target: the agent's CPU in
// that round over share of the raw reader's rate. Each figure is the
// median of the rounds where the case, the raw reader and rawjson all ran
// (rawcodec's, of those where it ran too).
func (r *report) cpuBudgetNote(sink string, size int, share float64) string {
	var budgets, spent, ref, codecRef, cpus []float64
	for _, results := range append([][]synthResult{r.Synthetic}, r.Rounds...) {
		s, raw, rj := findSynth(results, sink, size, ""), findSynth(results, "raw", size, ""), findSynth(results, "rawjson", size, "")
		if s == nil || raw == nil || rj == nil || s.CPUPerEvent == 0 || raw.EventsPerSec == 0 || rj.CPUPerEvent == 0 {
			continue
		}
		cpu := s.EventsPerSec * s.CPUPerEvent / 1e9 // CPUs the agent had
		cpus = append(cpus, cpu)
		budgets = append(budgets, cpu*1e9/(share*raw.EventsPerSec))
		spent = append(spent, s.CPUPerEvent)
		ref = append(ref, rj.CPUPerEvent)
		if rc := findSynth(results, "rawcodec", size, ""); rc != nil && rc.CPUPerEvent > 0 {
			codecRef = append(codecRef, rc.CPUPerEvent)
		}
	}
	if len(budgets) == 0 {
		return ""
	}
	note := fmt.Sprintf("at the %.2f CPU the agent had, %.0f%% allows %.0f ns/event; it spent %.0f, rawjson %.0f",
		medianOf(cpus), 100*share, medianOf(budgets), medianOf(spent), medianOf(ref))
	if len(codecRef) > 0 {
		note += fmt.Sprintf(", rawcodec %.0f", medianOf(codecRef))
	}
	return note
}

// diskNote compares what the file sink would write at share of the raw
// reader's rate with what the disk takes with fdatasync, or "".
func (r *report) diskNote(size int, share float64) string {
	raw, file := r.synth("raw", size, ""), r.synth("file", size, "")
	if raw == nil || file == nil || file.BytesPerEvent == 0 || r.DiskMBps == 0 {
		return ""
	}
	need := share * raw.EventsPerSec * file.BytesPerEvent / 1e6
	return fmt.Sprintf("%.0f%% is %.0f MB/s of %.0f-byte lines, the disk syncs %.0f MB/s", 100*share, need, file.BytesPerEvent, r.DiskMBps)
}

// stageBudgetNote is the CPU per event a filter stage may add for the
// null sink to keep share of its rate without one, beside what the
// built-in C filter costs alone (the stages table), or "".
func (r *report) stageBudgetNote(size int, share float64) string {
	none := r.synth("null", size, "")
	if none == nil || none.CPUPerEvent == 0 || r.Stages == nil {
		return ""
	}
	row := r.Stages.row("ExampleStages/drop-comm/batch=256")
	if row == nil || row.CPUNsPerEvent == 0 {
		return ""
	}
	budget := none.CPUPerEvent * (1/share - 1)
	return fmt.Sprintf("%.0f%% leaves a stage %.0f ns/event over the %.0f without; drop-comm alone costs %.0f", 100*share, budget, none.CPUPerEvent, row.CPUNsPerEvent)
}

func (r *report) write(dir, readme string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	md := r.markdown()
	if err := os.WriteFile(filepath.Join(dir, "latest.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	if readme == "" {
		return nil
	}
	if !filepath.IsAbs(readme) {
		readme = filepath.Join(filepath.Dir(filepath.Dir(dir)), readme)
	}
	return replaceSection(readme, r.summary())
}

func (r *report) stamp() string {
	commit := r.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if r.Dirty {
		commit += " (uncommitted changes)"
	}
	mode := ""
	if r.Quick {
		mode = ", quick mode"
	}
	if r.MaxProcs > 0 {
		mode += fmt.Sprintf(", agents at max_procs = %d", r.MaxProcs)
	}
	return fmt.Sprintf("commit %s, %s, kernel %s, %d cores (%s), load average %s at start%s, %.0fs windows, took %.0fs",
		commit, r.Date, r.Kernel, r.Cores, r.CPU, r.LoadAvg, mode, r.WindowS, r.TookS)
}

func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# sluice benchmark\n\n%s.\n\n", r.stamp())
	b.WriteString("Figures of one run compare with each other; the machine is shared and noisy, so absolute figures vary between runs. Regenerate with `make bench` (as root).\n\n")
	b.WriteString(r.targetsTable())
	b.WriteString("\n## Synthetic producer\n\n")
	b.WriteString("`bench/gadgets/synth.bpf.c` writes sequenced records into a 1 MiB ring buffer from one `getpgid(2)` call per 256 records (bpf_loop), wakeups batched as in the built-in gadgets, flat out on one thread per CPU (so that the reader, not the producer, is the limit). `raw` is a bare cilium/ebpf ring buffer reader of the same gadget; `rawjson` is that reader rendering each record as the JSON line sluice writes, with the field offsets written in, into a file, 256 lines per write from a second goroutine: what a program written for this record alone does with the standard library's formatting, a reference for the JSON-into-a-file rows; `rawcodec` is the same reader and writer rendering with sluice's own parts instead, the BTF decoder into the event model's msgpack and the JSON encoder: what the event model costs without the agent around it; the other rows are `sluice agent` into one sink (`stdout`: JSON into a file; `file`: the JSON-lines file sink; `nats`: core NATS to the embedded server, no subscriber; `jetstream`: the embedded server's JetStream with 100 events per message, as the built-in config has it; `jetstream1`: the same with one event per message), through no stage or 1 and 3 filters keeping every event (`c`: drop-comm in C, `go`: drop-comm-go with the Go SDK). Rates and CPU are over the flat-out window; CPU is the process's user + system time per delivered event; latency is kernel timestamp to the end of the sink's write, at a steady rate; losses are over the whole run, in the kernel (ring full) and after the reader (component/reason). Counters balance when, in one scrape taken after the run once two scrapes 100 ms apart agree and no queue holds an event, every record asked for reached the source (or was lost in the kernel), every component received what it sent plus what it dropped, and each received what the one before it sent.\n\n")
	b.WriteString("| case | events/s | of raw | of no stage | CPU ns/event | kernel lost | user drops | latency p50 / p99 ms (at rate) | RSS steady / peak MB | counters balance |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---|---|---|---|\n")
	for _, s := range r.Synthetic {
		if s.Error != "" {
			fmt.Fprintf(&b, "| %s | failed: %s |||||||||\n", s.Case, oneLine(s.Error))
			continue
		}
		lat := "-"
		if s.LatencyRate > 0 {
			lat = fmt.Sprintf("%s / %s (%dk/s)", fmtMS(s.LatencyP50ms), fmtMS(s.LatencyP99ms), s.LatencyRate/1000)
		}
		bal := "yes"
		if !s.Balanced {
			bal = "no: " + s.BalanceNote
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.0f | %.1f%% | %s | %s | %.0f / %.0f | %s |\n",
			s.Case, fmtRate(s.EventsPerSec), fmtPct(s.OfRaw), fmtPct(s.OfNoStage), s.CPUPerEvent, s.KernelLostPct,
			fmtDrops(s.UserDrops), lat, s.RSSSteadyMB, s.RSSPeakMB, bal)
	}
	if len(r.Rounds) > 0 {
		r.roundsTable(&b)
	}
	if t := r.TraceOpen; t != nil {
		b.WriteString("\n## trace_open under an open loop\n\n`sluice agent` with the built-in trace_open (following the loop's pid) into stdout JSON in a file, while `sluicebench openloop` opens `/dev/null` from one thread per CPU. CPU is the agent's per delivered event; the target takes the median of the runs.\n\n")
		b.WriteString("| run | opens/s | delivered | kernel lost | agent CPU per event | RSS peak |\n|---:|---:|---:|---:|---:|---:|\n")
		for i, t := range append([]traceOpenResult{*t}, r.TraceOpenRounds...) {
			if t.Error != "" {
				fmt.Fprintf(&b, "| %d | failed: %s | | | | |\n", i+1, oneLine(t.Error))
				continue
			}
			fmt.Fprintf(&b, "| %d | %s | %.1f%% (%d of %d) | %d | %.2f µs | %.0f MB |\n",
				i+1, fmtRate(t.OpensPerSec), t.DeliveredPct, t.Delivered, t.Opens, t.KernelLost, t.CPUPerEvent/1000, t.RSSPeakMB)
		}
	}
	if len(r.Startup) > 0 {
		b.WriteString("\n## Start to first event\n\nFrom starting `sluice agent` to the first event in its file sink (synthetic source at 1,000 records/s), with an empty Wasm compilation cache (cold) and then with the module cached.\n\n| stage | cold | cached |\n|---|---:|---:|\n")
		for _, s := range r.Startup {
			if s.Error != "" {
				fmt.Fprintf(&b, "| %s | failed: %s | |\n", s.Stage, oneLine(s.Error))
				continue
			}
			fmt.Fprintf(&b, "| %s | %.0f ms | %.0f ms |\n", s.Stage, s.ColdMS, s.CachedMS)
		}
	}
	if m := r.Memory; m != nil {
		fmt.Fprintf(&b, "\n## Memory of the default config\n\n`sluice config default` (ports and data_dir moved aside, metrics and pprof listeners added) for %.0fs while 50 execs/s, 1,000 TCP connections/s and 20,000 opens/s run.\n\n", m.Seconds)
		if m.Error != "" {
			fmt.Fprintf(&b, "failed: %s\n", oneLine(m.Error))
		} else {
			fmt.Fprintf(&b, "RSS %.1f MB (peak %.1f MB) after %d events. By mapping:", m.RSSMB, m.RSSPeakMB, m.Events)
			keys := make([]string, 0, len(m.BreakdownMB))
			for k := range m.BreakdownMB {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				fmt.Fprintf(&b, " %s %.1f MB;", k, m.BreakdownMB[k])
			}
			fmt.Fprintf(&b, " Go heap in use %.1f MB, idle %.1f MB (%.1f MB of it not returned to the system), Go runtime total %.1f MB. Agent CPU %.1f µs per event over the run.\n", m.GoHeapInuseMB, m.GoHeapIdleMB, m.GoHeapIdleKeptMB, m.GoSysMB, m.CPUPerEventUS)
			if m.HeapTop != "" {
				fmt.Fprintf(&b, "\nLive heap at the end (`go tool pprof -top`):\n\n```\n%s```\n", m.HeapTop)
			}
		}
	}
	if j := r.JetStream; j != nil {
		b.WriteString("\n## JetStream publishing\n\nThe same ~200-byte events to one stream of an in-process server (file storage), alternating phases in one run: a synchronous loop (publish, await the ack), nats.go's async loop with the sink's window (4,096), sluice's NATS sink with one event per message and writes of the size it asks the pipeline for (2,048 events; a Write returns when all acks of its batch are in), and the sink as the built-in config has it (`batch { max_events = 100 }`: writes of 1,600 events in 16 messages). At the end the stream must hold every message once.\n\n")
		if j.Error != "" {
			fmt.Fprintf(&b, "failed: %s\n", oneLine(j.Error))
		} else {
			fmt.Fprintf(&b, "| | synchronous | nats.go async | sluice sink, one event per message | sluice sink, 100 events per message |\n|---|---:|---:|---:|---:|\n| events/s | %s | %s (%.1fx) | %s (%.1fx) | %s (%.1fx; by round %s) |\n| process CPU per event | %.1f µs | %.1f µs | %.1f µs | %.2f µs |\n",
				fmtRate(j.SyncPerSec), fmtRate(j.BareAsyncPerSec), j.BareOfSync, fmtRate(j.SinkPerSec), j.SinkOfSync, fmtRate(j.SinkBatchedPerSec), j.SinkBatchedOfSync, joinRatios(j.SinkBatchedOfSyncRounds),
				j.SyncCPUPerMsgUS, j.AsyncCPUPerMsgUS, j.SinkCPUPerMsgUS, j.SinkBatchedCPUPerEventUS)
			fmt.Fprintf(&b, "\nThe synchronous loop waited (off CPU) %.0f%% of its time; asynchronous publishing can only win that back, so on %d cores one event per message is at most %.1fx the synchronous loop here (cores x sync time per message / async CPU per message): the CPU per message of client and server, not the wait for acks, bounds it. Batching events into messages is what multiplies the rate.\n",
				j.SyncWaitPct, r.Cores, j.AsyncBound)
			shares := func(title string, s []cpuShare) {
				if len(s) == 0 {
					return
				}
				b.WriteString("\n" + title + ":")
				for _, c := range s {
					fmt.Fprintf(&b, " %s %.0f%%;", c.Package, c.Pct)
				}
				b.WriteString("\n")
			}
			shares("Where the one-event-per-message phase spends CPU (flat, whole process)", j.SinkCPU)
			shares("The same by the code each sample was spent for (allocation, GC assists, locks and syscalls count for their caller)", j.SinkCPUByCaller)
			shares("The batched phase, by the code each sample was spent for", j.SinkBatchedCPUByCaller)
		}
	}
	if s := r.Stages; s != nil {
		fmt.Fprintf(&b, "\n## Built-in stages\n\nEach built-in stage through the real host (`%s`): per event at batch 256 (drop-comm also at 1 and 1024) on trace_exec-shaped events, and on realistic exec events (long command lines, a few secrets, mostly none: `RealisticExec`). CPU is the calling thread's; B and allocs are per batch.\n\n", s.Command)
		if s.Error != "" {
			fmt.Fprintf(&b, "failed: %s\n", oneLine(s.Error))
		} else {
			b.WriteString("| benchmark | ns/event | CPU ns/event | B/batch | allocs/batch |\n|---|---:|---:|---:|---:|\n")
			for _, row := range s.Rows {
				fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.0f | %.0f |\n", row.Name, row.NsPerEvent, row.CPUNsPerEvent, row.BytesPerOp, row.AllocsPerOp)
			}
		}
	}
	return b.String()
}

// roundsTable writes the ratio targets' cases round by round.
func (r *report) roundsTable(b *strings.Builder) {
	fmt.Fprintf(b, "\n## Rounds of the ratio cases\n\nThe cases the ratio targets to the raw reader and the null sink's one-filter target compare, run again in turn after the matrix (`-rounds %d`; round 1 is the matrix above): events/s, CPU ns/event and the ratio the targets take (of the raw reader, or of no stage for a stage's case), within each round. The targets are the medians.\n\n| case |", len(r.Rounds)+1)
	for i := range len(r.Rounds) + 1 {
		fmt.Fprintf(b, " round %d |", i+1)
	}
	b.WriteString("\n|---|")
	for range len(r.Rounds) + 1 {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, c := range roundCases {
		if r.synth(c.Sink, c.Size, c.Stages) == nil {
			continue
		}
		fmt.Fprintf(b, "| %s |", c)
		for _, results := range append([][]synthResult{r.Synthetic}, r.Rounds...) {
			s := findSynth(results, c.Sink, c.Size, c.Stages)
			switch {
			case s == nil:
				b.WriteString(" failed |")
			case c.Stages != "":
				fmt.Fprintf(b, " %s, %.0f ns, %s |", fmtRate(s.EventsPerSec), s.CPUPerEvent, fmtPct(s.OfNoStage))
			case c.Sink == "raw":
				fmt.Fprintf(b, " %s, %.0f ns, kernel lost %.0f%% |", fmtRate(s.EventsPerSec), s.CPUPerEvent, s.KernelLostPct)
			default:
				fmt.Fprintf(b, " %s, %.0f ns, %s |", fmtRate(s.EventsPerSec), s.CPUPerEvent, fmtPct(s.OfRaw))
			}
		}
		b.WriteString("\n")
	}
}

// fmtPcts renders shares as "41%, 45%, 44%".
func fmtPcts(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.0f%%", 100*x)
	}
	return strings.Join(parts, ", ")
}

// joinRatios renders ratios as "12.1x, 13.0x".
func joinRatios(rs []float64) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%.1fx", r)
	}
	return strings.Join(parts, ", ")
}

func (r *report) targetsTable() string {
	var b strings.Builder
	b.WriteString("## Targets (issues 12 and 16)\n\n| target | want | this run | met |\n|---|---|---|---|\n")
	for _, t := range r.Targets {
		met := "no"
		if t.Met {
			met = "yes"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.Name, t.Want, t.Got, met)
	}
	return b.String()
}

// summary is what README.md shows: the targets and the stamp.
func (r *report) summary() string {
	return fmt.Sprintf("Latest `make bench` (%s); the full tables are in [bench/results/latest.md](bench/results/latest.md).\n\n%s",
		r.stamp(), strings.TrimPrefix(r.targetsTable(), "## Targets (issues 12 and 16)\n\n"))
}

const (
	sectionBegin = "<!-- bench:begin (make bench rewrites this section) -->"
	sectionEnd   = "<!-- bench:end -->"
)

// replaceSection puts text between the bench markers of the file.
func replaceSection(path, text string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, sectionBegin), strings.Index(s, sectionEnd)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no bench section (%s ... %s)", path, sectionBegin, sectionEnd)
	}
	s = s[:i+len(sectionBegin)] + "\n" + text + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtPct(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*v)
}

func fmtMS(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	if v < 10 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtDrops(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
