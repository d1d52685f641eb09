package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/wasmbpf"
)

// paramFlags collects repeated --param k=v flags.
type paramFlags []config.Param

func (p *paramFlags) String() string { return "" }
func (p *paramFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", v)
	}
	*p = append(*p, config.Param{Name: k, Value: val})
	return nil
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sluice run GADGET [--param NAME=VALUE ...] [--wasm FILE] [-o json|table] [--timeout D]\n       sluice run APP.wasm [--emit records|stdout|both] [-o json|table] [--timeout D] [-- ARGS...]\n\nGADGET is a built-in gadget name, a path to an eBPF ELF, or an image reference\n(HOST[:PORT]/NAME:TAG, NAME@sha256:..., or oci://...), pulled into the local store.\nA wasm-bpf application (a .wasm module importing the wasm_bpf host interface, or\nan image of one) runs as a source instead; ARGS after -- are its argv.")
		fs.PrintDefaults()
	}
	// What follows -- is the application's own command line.
	var appArgs []string
	hasAppArgs := false
	if i := slices.Index(args, "--"); i >= 0 {
		args, appArgs, hasAppArgs = args[:i], args[i+1:], true
	}
	var params paramFlags
	fs.Var(&params, "param", "gadget parameter `NAME=VALUE` (repeatable)")
	output := fs.String("o", "table", "output format: json or table")
	timeout := fs.Duration("timeout", 0, "stop after this long (0: until interrupted)")
	eventType := fs.String("event-type", "", "BTF struct of the records, for gadgets without markers")
	mapName := fs.String("map", "", "read only this output map")
	bufferSize := fs.Int64("buffer-size", 0, "ring buffer bytes, or perf buffer bytes per CPU (0: default)")
	wasm := fs.String("wasm", "", "a Wasm gadget module `FILE` to run with a file or built-in gadget (docs/stage-abi.md)")
	whenFull := fs.String("when-full", "drop_oldest", "queue policy when the terminal falls behind: block, drop_newest, drop_oldest")
	logLevel := fs.String("log-level", "warn", "log level: debug, info, warn, error")
	stats := fs.Bool("stats", false, "print event totals (received, delivered, dropped by reason) to stderr at exit")
	emit := fs.String("emit", "records", "for a wasm-bpf application: what becomes events: records (what it polls, decoded), stdout (its printed lines) or both")
	var images imageRunFlags
	images.register(fs)
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		fs.Usage()
		return errUsage
	}
	if *output != "json" && *output != "table" {
		return fmt.Errorf("run: output format %q: want json or table", *output)
	}
	f := runConfig(positional[0], params, *output)
	f.Agent.LogLevel = *logLevel
	f.Sources[0].EventType = *eventType
	f.Sources[0].Map = *mapName
	f.Sources[0].BufferSize = *bufferSize
	f.Sources[0].Wasm = *wasm
	f.Pipelines[0].Queue.WhenFull = *whenFull
	isApp, err := isWasmBPFApp(ctx, f, positional[0], images.fetchOptions(stderr))
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	switch {
	case isApp:
		if len(params) > 0 || *wasm != "" || *mapName != "" {
			return fmt.Errorf("run: %s is a wasm-bpf application: --param, --wasm and --map are for gadgets; its own arguments follow --", positional[0])
		}
		if _, err := wasmbpf.ParseEmit(*emit); err != nil {
			return fmt.Errorf("run: %w", err)
		}
		appSource(f, positional[0], appArgs, *emit)
	case hasAppArgs:
		return fmt.Errorf("run: arguments after -- are a wasm-bpf application's; %s is a gadget (its parameters are --param NAME=VALUE)", positional[0])
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	return runAgent(ctx, f, config.NewParser(), stdout, stderr, runOptions{stats: *stats, fetch: images.fetchOptions(stderr)})
}

// runConfig is the config `sluice run` stands for: one source, one stdout
// sink, one pipeline, every other value at its default.
func runConfig(gadget string, params []config.Param, format string) *config.File {
	host, _ := os.Hostname()
	src := &config.Source{Type: "gadget", Name: sourceName(gadget), Ref: "", Gadget: gadget, Params: params}
	src.Ref = "source.gadget." + src.Name
	sink := &config.Sink{Type: "stdout", Name: "terminal", Ref: "sink.stdout.terminal", Stdout: &config.StdoutSink{Format: format}}
	return &config.File{
		Agent: config.Agent{
			Name:               host,
			DataDir:            config.DefaultDataDir,
			LogLevel:           config.DefaultLogLevel,
			LogFormat:          config.DefaultLogFormat,
			ShutdownGrace:      config.DefaultShutdownGrace,
			LossReportInterval: config.DefaultLossReportInterval,
		},
		Sources: []*config.Source{src},
		Sinks:   []*config.Sink{sink},
		Pipelines: []*config.Pipeline{{
			Name:    "run",
			Sources: []config.Reference{{Kind: config.KindSource, Type: "gadget", Name: src.Name}},
			Sinks:   []config.Reference{{Kind: config.KindSink, Type: "stdout", Name: "terminal"}},
			Queue:   config.Queue{MaxEvents: config.DefaultQueueMaxEvents, MaxBytes: config.DefaultQueueMaxBytes, WhenFull: "drop_oldest"},
			Batch:   config.Batch{MaxEvents: config.DefaultBatchMaxEvents, MaxDelay: config.DefaultBatchMaxDelay},
		}},
	}
}

// isWasmBPFApp tells a wasm-bpf application from a gadget: a file that is
// a Wasm module importing the wasm_bpf interface, or an image of the
// wasm-bpf kind (fetched under the image policy to find out).
func isWasmBPFApp(ctx context.Context, f *config.File, target string, fo agent.FetchOptions) (bool, error) {
	if agent.IsImageReference(target) {
		kind, err := agent.ImageKind(ctx, f, target, fo)
		if err != nil {
			return false, err
		}
		return kind == "wasm-bpf", nil
	}
	if _, ok := gadgets.Lookup(target); ok {
		return false, nil
	}
	b, err := os.ReadFile(target)
	if err != nil || !bytes.HasPrefix(b, []byte("\x00asm")) {
		return false, nil // a gadget, or a path the gadget resolution reports on
	}
	if !wasmbpf.IsWasmBPF(b) {
		return false, fmt.Errorf("%s is a Wasm module but not a wasm-bpf application (it imports nothing from wasm_bpf); a Wasm stage runs in a pipeline (stage \"wasm\"), a gadget's module with --wasm", target)
	}
	return true, nil
}

// appSource turns the config's one source into a wasm_bpf source running
// module with args.
func appSource(f *config.File, module string, args []string, emit string) {
	old := f.Sources[0]
	name := sourceName(strings.TrimSuffix(module, ".wasm"))
	src := &config.Source{Type: "wasm_bpf", Name: name, Ref: "source.wasm_bpf." + name, EventType: old.EventType, WasmBPF: &config.WasmBPFSource{
		Module: module, Args: args, Emit: emit, EventType: old.EventType, BufferSize: old.BufferSize,
		MemoryLimit: config.DefaultWasmBPFMemoryLimit, StopGrace: config.DefaultWasmBPFStopGrace,
	}}
	f.Sources[0] = src
	f.Pipelines[0].Sources = []config.Reference{{Kind: config.KindSource, Type: "wasm_bpf", Name: name}}
}

// sourceName derives a source name from a gadget reference: the built-in
// name, the ELF's base name, or the last element of an image's repository.
func sourceName(gadget string) string {
	name := gadget
	if ref, err := oci.ParseReference(gadget); err == nil && agent.IsImageReference(gadget) {
		name = ref.Repository
	}
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimSuffix(strings.TrimSuffix(name, ".o"), ".bpf")
	if name == "" {
		return "gadget"
	}
	return name
}
