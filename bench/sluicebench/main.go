// Command sluicebench is sluice's end-to-end benchmark (`make bench`) and
// soak test (`make soak`). It runs as root from the repository root.
//
// The benchmark measures, in one run and so on the same machine state,
// the synthetic producer (bench/gadgets, internal/synth) read by a bare
// cilium/ebpf ring buffer reader (the ceiling) and by the agent into each
// sink with and without Wasm stages; the real trace_open under an open
// loop; start to first event; the default config's memory; and JetStream
// publishing. Each agent run is a process of its own, measured from /proc
// (CPU time, user and system, and RSS) and from its /metrics. Results go
// to bench/results (latest.md, latest.json) and into README.md between the
// bench markers.
//
//	sluicebench [-quick] [-window 5s] [-only REGEXP] [-out bench/results]
//	sluicebench soak [-duration 10m] [-rate 50000]
//	sluicebench produce [-rate N] [-threads N] [-d 10s]  (the producer alone)
//	sluicebench rawread -object OBJ -ring BYTES   (the raw reader, a child)
//	sluicebench openloop [-rate N]                (an open loop, a child)
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/synth"
)

func main() {
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "rawread":
		err = rawReadMain(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "openloop":
		err = openLoopMain(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "produce":
		err = produceMain(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "soak":
		err = soakMain(os.Args[2:])
	default:
		err = benchMain(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluicebench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// newEnv finds the repository and the binaries every mode needs.
func newEnv(sluice string) (*benchEnv, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("run as root: the agent and the raw reader load eBPF programs")
	}
	root, err := synth.FindRoot()
	if err != nil {
		return nil, fmt.Errorf("find the repository (bench/gadgets) from the working directory: %w", err)
	}
	if !filepath.IsAbs(sluice) {
		sluice = filepath.Join(root, sluice)
	}
	if _, err := os.Stat(sluice); err != nil {
		return nil, fmt.Errorf("agent binary: %w (make build)", err)
	}
	goFilter := ""
	for _, p := range []string{"stages/drop-comm-go.wasm", "examples/stages/drop-comm-go.wasm"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			goFilter = filepath.Join(root, p)
			break
		}
	}
	if goFilter == "" {
		return nil, fmt.Errorf("find drop-comm-go.wasm (make stages)")
	}
	tmp, err := os.MkdirTemp("", "sluicebench-")
	if err != nil {
		return nil, err
	}
	return &benchEnv{root: root, sluice: sluice, tmp: tmp, goFilter: goFilter, log: logf,
		window: 5 * time.Second, latRate: 50000, latDur: 2 * time.Second, producers: runtime.NumCPU()}, nil
}

func benchMain(args []string) error {
	fs := flag.NewFlagSet("sluicebench", flag.ExitOnError)
	quick := fs.Bool("quick", false, "a shorter run: 2s windows, 64-byte records only, one stage of each kind, no 60s memory run")
	window := fs.Duration("window", 0, "measured window of each flat-out run (default 5s, 2s with -quick)")
	only := fs.String("only", "", "run only the parts whose names match this regexp (synthetic case names such as null/64B/none, and trace_open, startup, memory, jetstream, stages)")
	out := fs.String("out", "bench/results", "directory of latest.md and latest.json")
	readme := fs.String("readme", "README.md", "file whose bench section gets the summary (\"\" leaves it)")
	sluice := fs.String("sluice", "bin/sluice", "the agent binary")
	profile := fs.String("profile", "", "directory where each synthetic agent run leaves a CPU profile of its flat-out window (CASE.pprof, for `go tool pprof`)")
	rounds := fs.Int("rounds", 3, "rounds of the cases the ratio targets to the raw reader and the null sink's one-filter target compare ("+strings.Join(roundCaseNames(), ", ")+"): the matrix is the first, the others run after it, and each of those targets is the median of its rounds; trace_open runs as many times and its target is the median too (default 1 with -quick)")
	maxProcs := fs.Int("max-procs", 0, "agent { max_procs } of every agent run (0: the agent's default, every CPU)")
	fs.Parse(args)
	agentMaxProcs = *maxProcs
	roundsSet := false
	fs.Visit(func(f *flag.Flag) { roundsSet = roundsSet || f.Name == "rounds" })
	if *quick && !roundsSet {
		*rounds = 1
	}
	env, err := newEnv(*sluice)
	if err != nil {
		return err
	}
	defer os.RemoveAll(env.tmp)
	if *quick {
		env.window, env.latDur = 2*time.Second, time.Second
	}
	if *window > 0 {
		env.window = *window
	}
	if *profile != "" {
		if err := os.MkdirAll(*profile, 0o755); err != nil {
			return err
		}
		env.profileDir = *profile
	}
	var filter *regexp.Regexp
	if *only != "" {
		if filter, err = regexp.Compile(*only); err != nil {
			return err
		}
	}
	want := func(name string) bool { return filter == nil || filter.MatchString(name) }
	started := time.Now()
	rep := newReport(env, *quick)

	for _, c := range synthCases(*quick) {
		if !want(c.String()) {
			continue
		}
		env.log("synthetic %s", c)
		r := env.runSynth(c)
		if r.Error != "" {
			env.log("  failed: %s", r.Error)
		} else {
			env.log("  %.0f events/s (%.0f/s asked for), %.0f ns CPU/event, kernel lost %.1f%%, RSS %.0f MB", r.EventsPerSec, r.RequestedPerS, r.CPUPerEvent, r.KernelLostPct, r.RSSSteadyMB)
		}
		rep.Synthetic = append(rep.Synthetic, r)
	}
	// The ratio targets' cases again, in turn: one run's ratio moves by
	// ten points with the machine's other tenants, a median of rounds
	// less.
	for round := 2; round <= *rounds; round++ {
		var results []synthResult
		for _, c := range roundCases {
			if !want(c.String()) || rep.synth(c.Sink, c.Size, c.Stages) == nil {
				continue
			}
			env.log("synthetic %s, round %d", c, round)
			r := env.runSynth(c)
			if r.Error != "" {
				env.log("  failed: %s", r.Error)
			} else {
				env.log("  %.0f events/s (%.0f/s asked for), %.0f ns CPU/event, kernel lost %.1f%%, RSS %.0f MB", r.EventsPerSec, r.RequestedPerS, r.CPUPerEvent, r.KernelLostPct, r.RSSSteadyMB)
			}
			results = append(results, r)
		}
		if len(results) > 0 {
			rep.Rounds = append(rep.Rounds, results)
		}
	}
	if rep.synth("file", 64, "") != nil || rep.synth("file", 256, "") != nil {
		mbps, err := measureDisk(env.diskDir())
		if err != nil {
			env.log("disk: %v", err)
		} else {
			env.log("disk: %.0f MB/s with fdatasync", mbps)
			rep.DiskMBps = mbps
		}
	}
	traceSecs, memSecs, jsPhase := 10*time.Second, 60*time.Second, 2*time.Second
	if *quick {
		traceSecs, memSecs, jsPhase = 3*time.Second, 10*time.Second, time.Second
	}
	if want("trace_open") {
		env.log("trace_open under an open loop, %s", traceSecs)
		// An absolute target on a shared machine: judged by the median of
		// as many runs as the ratio targets have rounds.
		for round := 1; round <= *rounds; round++ {
			r := env.runTraceOpen(traceSecs)
			env.log("  %.0f opens/s, %.1f%% delivered, %.0f ns CPU/event %s", r.OpensPerSec, r.DeliveredPct, r.CPUPerEvent, r.Error)
			if round == 1 {
				rep.TraceOpen = &r
			} else {
				rep.TraceOpenRounds = append(rep.TraceOpenRounds, r)
			}
		}
	}
	if want("startup") {
		for _, st := range []string{"none", "c", "go"} {
			env.log("start to first event, stage %s", st)
			r := env.runStartup(st)
			env.log("  cold %.0f ms, cached %.0f ms %s", r.ColdMS, r.CachedMS, r.Error)
			rep.Startup = append(rep.Startup, r)
		}
	}
	if want("memory") {
		env.log("the default config for %s", memSecs)
		r := env.runMemory(memSecs)
		env.log("  RSS %.1f MB (peak %.1f) %s", r.RSSMB, r.RSSPeakMB, r.Error)
		rep.Memory = &r
	}
	if want("jetstream") {
		env.log("JetStream: sync loop, nats.go async, the sink")
		r := env.runJetStream(jsPhase, 3)
		env.log("  sync %.0f/s, bare async %.0f/s (%.1fx), sink %.0f/s (%.1fx), batched sink %.0f/s (%.1fx) %s", r.SyncPerSec, r.BareAsyncPerSec, r.BareOfSync,
			r.SinkPerSec, r.SinkOfSync, r.SinkBatchedPerSec, r.SinkBatchedOfSync, r.Error)
		rep.JetStream = &r
	}
	if want("stages") {
		env.log("built-in stages: go %s", strings.Join(quoteArgs(stageBenchArgs), " "))
		r := env.runStages()
		env.log("  %d rows %s", len(r.Rows), r.Error)
		rep.Stages = &r
	}
	rep.finish(time.Since(started))
	return rep.write(resultsDir(env.root, *out), *readme)
}

// synthCases is the matrix: the raw reader and every sink without stages
// at both record sizes; every sink with 1 and 3 C and Go filters at 64
// bytes.
func synthCases(quick bool) []synthCase {
	sinks := []string{"null", "stdout", "file", "nats", "jetstream"}
	sizes := synth.Sizes
	stages := []string{"c1", "c3", "go1", "go3"}
	if quick {
		sizes, stages = []int{64}, []string{"c1", "go1"}
	}
	var out []synthCase
	for _, size := range sizes {
		out = append(out, synthCase{Sink: "raw", Size: size}, synthCase{Sink: "rawjson", Size: size}, synthCase{Sink: "rawcodec", Size: size})
		for _, s := range sinks {
			out = append(out, synthCase{Sink: s, Size: size})
		}
	}
	// JetStream with one event per message, beside the batched default.
	out = append(out, synthCase{Sink: "jetstream1", Size: 64})
	for _, s := range sinks {
		for _, st := range stages {
			out = append(out, synthCase{Sink: s, Size: 64, Stages: st})
		}
	}
	return out
}

// roundCases are the cases of the ratio targets to the raw reader and of
// the null sink's one-filter target, which -rounds runs again after the
// matrix. The 256-byte JSON targets joined the 64-byte ones when the file
// sink's came within the rounds' swing of 50% (46-53% in single runs).
// rawjson and rawcodec are the JSON targets' references.
var roundCases = []synthCase{
	{Sink: "raw", Size: 64},
	{Sink: "rawjson", Size: 64},
	{Sink: "rawcodec", Size: 64},
	{Sink: "null", Size: 64},
	{Sink: "null", Size: 64, Stages: "c1"},
	{Sink: "stdout", Size: 64},
	{Sink: "file", Size: 64},
	{Sink: "raw", Size: 256},
	{Sink: "rawjson", Size: 256},
	{Sink: "rawcodec", Size: 256},
	{Sink: "null", Size: 256},
	{Sink: "stdout", Size: 256},
	{Sink: "file", Size: 256},
}

func roundCaseNames() []string {
	names := make([]string, len(roundCases))
	for i, c := range roundCases {
		names[i] = c.String()
	}
	return names
}

// resultsDir is out, taken from the repository root when relative.
func resultsDir(root, out string) string {
	if filepath.IsAbs(out) {
		return out
	}
	return filepath.Join(root, out)
}
