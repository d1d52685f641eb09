package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/oci"
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
		fmt.Fprintln(stderr, "usage: sluice run GADGET [--param NAME=VALUE ...] [--wasm FILE] [-o json|table] [--timeout D]\n\nGADGET is a built-in gadget name, a path to an eBPF ELF, or an image reference\n(HOST[:PORT]/NAME:TAG, NAME@sha256:..., or oci://...), pulled into the local store.")
		fs.PrintDefaults()
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
