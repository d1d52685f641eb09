package main

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/oci"
)

func newRunCommand() *cobra.Command {
	var (
		params     []config.Param
		output     string
		timeout    time.Duration
		eventType  string
		mapName    string
		bufferSize int64
		wasm       string
		queuePol   string
		logLevel   string
		stats      bool
		images     imageRunFlags
		kinds      gadgetRunFlags
	)
	cmd := &cobra.Command{
		Use:   "run GADGET",
		Short: "Run one gadget straight to the terminal",
		Long: `Run one gadget straight to the terminal, without a config file.

GADGET is a built-in gadget name (see 'sluice gadgets'), a path to an eBPF ELF,
or an image reference (HOST[:PORT]/NAME:TAG, NAME@sha256:..., or oci://...),
pulled into the local store. 'sluice run GADGET --help' lists the gadget's
parameters and fields.`,
		Example: `  sluice run trace_exec
  sluice run trace_open --param target_pid=1234 -o json --timeout 10s
  sluice run ./my_gadget.bpf.o --event-type event
  sluice run localhost:5000/gadgets/trace_exec:v1 --pull always
  sluice run trace_exec --wasm my_module.wasm --stats
  sluice run trace_open --help                   # the gadget's parameters and fields`,
		Args:              exactArgs("GADGET"),
		ValidArgsFunction: completeGadget,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			f := runConfig(args[0], params, output)
			f.Agent.LogLevel = logLevel
			f.Sources[0].EventType = eventType
			f.Sources[0].Map = mapName
			f.Sources[0].BufferSize = bufferSize
			f.Sources[0].Wasm = wasm
			f.Pipelines[0].Queue.WhenFull = queuePol
			if err := kinds.apply(f, cmd.OutOrStdout()); err != nil {
				return err
			}
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			stderr := cmd.ErrOrStderr()
			return runAgent(ctx, f, config.NewParser(), cmd.OutOrStdout(), stderr, runOptions{stats: stats, fetch: images.fetchOptions(stderr)})
		},
	}
	fs := cmd.Flags()
	fs.Var(paramValue{&params}, "param", "gadget parameter (repeatable)")
	enumVarP(cmd, fs, &output, "output", "o", "table", config.StdoutFormats(), "output format")
	durationVar(fs, &timeout, "timeout", 0, "stop after this long, such as 30s or 5m (0: until interrupted)")
	fs.StringVar(&eventType, "event-type", "", "BTF struct of the records, for gadgets without markers")
	fs.StringVar(&mapName, "map", "", "read only this output map")
	fs.Int64Var(&bufferSize, "buffer-size", 0, "ring buffer bytes, or perf buffer bytes per CPU (0: default)")
	fs.StringVar(&wasm, "wasm", "", "a Wasm gadget module `file` to run with a file or built-in gadget (docs/stage-abi.md)")
	enumVarP(cmd, fs, &queuePol, "when-full", "", "drop_oldest", whenFull, "queue policy when the terminal falls behind")
	enumVarP(cmd, fs, &logLevel, "log-level", "", "warn", logLevels, "log level")
	fs.BoolVar(&stats, "stats", false, "print event totals (received, delivered, dropped by reason) to stderr at exit")
	images.register(cmd)
	kinds.register(cmd)
	cmd.SetHelpFunc(gadgetHelpFunc(&images))
	cmd.MarkFlagFilename("wasm", "wasm")
	cmd.RegisterFlagCompletionFunc("param", cobra.NoFileCompletions)
	cmd.RegisterFlagCompletionFunc("event-type", cobra.NoFileCompletions)
	cmd.RegisterFlagCompletionFunc("map", cobra.NoFileCompletions)
	cmd.RegisterFlagCompletionFunc("buffer-size", cobra.NoFileCompletions)
	cmd.RegisterFlagCompletionFunc("timeout", cobra.NoFileCompletions)
	return cmd
}

// completeGadget offers the built-in gadget names, and files for a path.
func completeGadget(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []cobra.Completion
	for _, b := range gadgets.Builtins() {
		names = append(names, cobra.CompletionWithDesc(b.Name, b.Description))
	}
	return names, cobra.ShellCompDirectiveDefault // built-ins, and files
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
