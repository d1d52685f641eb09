package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/wasmbpf"
)

func newRunCommand() *cobra.Command {
	var (
		params     []config.Param
		output     string
		timeout    time.Duration
		bufferSize int64
		wasm       string
		queuePol   string
		logLevel   string
		stats      bool
		emit       string
		images     imageRunFlags
		kinds      gadgetRunFlags
		filters    runFilters
		plain      plainRunFlags
	)
	cmd := &cobra.Command{
		Use:   "run GADGET | APP.wasm [-- ARGS...]",
		Short: "Run one gadget (or wasm-bpf application) straight to the terminal",
		Long: `Run one gadget straight to the terminal, without a config file.

GADGET is a built-in gadget name (see 'sluice gadgets'), a path to an eBPF ELF,
or an image reference (HOST[:PORT]/NAME:TAG, NAME@sha256:..., or oci://...),
pulled into the local store. 'sluice run GADGET --help' lists the gadget's
parameters, the filters it runs in the kernel and its fields.

--pid, --tid, --uid, --gid, --comm, --container and --containers filter in
the kernel for gadgets with the filter contract (every built-in): a
filtered-out event costs no ring buffer space. --filter takes Inspektor
Gadget's field filter syntax ('comm==curl,ret<0') and runs on the host, for
any gadget. sluice's own events are left out unless --include-self.

A wasm-bpf application (a Wasm module that imports the wasm_bpf host interface,
or an image of one) runs instead of a gadget: what follows -- is its own argv,
and --emit chooses whether its records, its printed lines or both become events
(docs/wasm-bpf.md).`,
		Example: `  sluice run trace_exec
  sluice run trace_open --param target_pid=1234 -o json --timeout 10s
  sluice run ./my_gadget.bpf.o --event-type event
  sluice run ./execsnoop.bpf.o --event-type event --hint args:as=strings,count=args_count
  sluice run ./sigsnoop.bpf.o --skip-programs sig_trace --param filtered_pid=1234 --log-level info
  sluice run localhost:5000/gadgets/trace_exec:v1 --pull always
  sluice run trace_exec --wasm my_module.wasm --stats
  sluice run trace_open --help                   # the gadget's parameters and fields
  sluice run trace_exec --container web          # one container, filtered in the kernel
  sluice run trace_open --comm curl --filter 'ret<0' --fields pid,path,ret_error
  sluice run trace_tcp --containers -o json      # every container's connections
  sluice run ./execsnoop.wasm -- -p 1234          # a wasm-bpf application and its argv
  sluice run localhost:5000/apps/execsnoop:v1 --emit both`,
		Args:              runArgs,
		ValidArgsFunction: completeGadget,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var appArgs []string
			hasAppArgs := cmd.ArgsLenAtDash() >= 0
			if hasAppArgs {
				args, appArgs = args[:cmd.ArgsLenAtDash()], args[cmd.ArgsLenAtDash():]
			}
			f := runConfig(args[0], params, output)
			f.Agent.LogLevel = logLevel
			plain.apply(f)
			f.Sources[0].BufferSize = bufferSize
			f.Sources[0].Wasm = wasm
			f.Pipelines[0].Queue.WhenFull = queuePol
			if err := kinds.apply(f, cmd.OutOrStdout()); err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			isApp, err := isWasmBPFApp(ctx, f, args[0], images.fetchOptions(stderr))
			if err != nil {
				return err
			}
			switch {
			case isApp:
				for _, name := range gadgetOnlyFlags(cmd) {
					return usageErrorf(cmd, "%s is a wasm-bpf application: --%s is for gadgets (its own arguments follow --)", args[0], name)
				}
				appSource(f, args[0], appArgs, emit)
			case hasAppArgs:
				return usageErrorf(cmd, "arguments after -- are a wasm-bpf application's; %s is a gadget (its parameters are --param NAME=VALUE)", args[0])
			case cmd.Flags().Changed("emit"):
				return usageErrorf(cmd, "--emit is for wasm-bpf applications; %s is a gadget", args[0])
			}
			if err := filters.apply(f); err != nil {
				return err
			}
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			// The terminal is the run's only sink: when its reader goes
			// away (sluice run ... | head), the run is over, as for any
			// command-line tool. (The agent's stdout sink fails alone
			// instead, beside its other sinks.)
			ctx, readerGone := context.WithCancel(ctx)
			defer readerGone()
			// A handler makes a write to the closed pipe return EPIPE
			// instead of killing the process, so that the agent stops
			// cleanly (programs detached, totals printed).
			signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
			stdout := &endOnClosedPipe{w: cmd.OutOrStdout(), closed: readerGone}
			return runAgent(ctx, f, config.NewParser(), stdout, stderr, runOptions{stats: stats, fetch: images.fetchOptions(stderr)})
		},
	}
	fs := cmd.Flags()
	fs.Var(paramValue{&params}, "param", "gadget parameter (repeatable)")
	enumVarP(cmd, fs, &output, "output", "o", "table", config.StdoutFormats(), "output format")
	durationVar(fs, &timeout, "timeout", 0, "stop after this long, such as 30s or 5m (0: until interrupted)")
	fs.Int64Var(&bufferSize, "buffer-size", 0, "ring buffer bytes, or perf buffer bytes per CPU (0: default)")
	fs.StringVar(&wasm, "wasm", "", "a Wasm gadget module `file` to run with a file or built-in gadget (docs/stage-abi.md)")
	enumVarP(cmd, fs, &queuePol, "when-full", "", "drop_oldest", whenFull, "queue policy when the terminal falls behind")
	enumVarP(cmd, fs, &logLevel, "log-level", "", "warn", logLevels, "log level")
	fs.BoolVar(&stats, "stats", false, "print event totals (received, delivered, dropped by reason) to stderr at exit")
	enumVarP(cmd, fs, &emit, "emit", "", config.DefaultWasmBPFEmit, config.WasmBPFEmitValues(), "for a wasm-bpf application: what becomes events: its records (decoded), its printed lines, or both")
	images.register(cmd)
	kinds.register(cmd)
	filters.register(cmd)
	plain.register(cmd)
	cmd.SetHelpFunc(gadgetHelpFunc(&images, func(f *config.File) {
		plain.apply(f)
		f.Sources[0].Wasm = wasm // its parameters are listed too
	}))
	cmd.MarkFlagFilename("wasm", "wasm")
	cmd.RegisterFlagCompletionFunc("param", cobra.NoFileCompletions)
	cmd.RegisterFlagCompletionFunc("buffer-size", cobra.NoFileCompletions)
	cmd.RegisterFlagCompletionFunc("timeout", cobra.NoFileCompletions)
	return cmd
}

// runArgs wants GADGET alone, or APP.wasm and the application's own
// arguments after --.
func runArgs(cmd *cobra.Command, args []string) error {
	if dash := cmd.ArgsLenAtDash(); dash >= 0 {
		return exactArgs("GADGET")(cmd, args[:dash])
	}
	return exactArgs("GADGET")(cmd, args)
}

// runFlagsForApps are the flags of `sluice run` that apply to a wasm-bpf
// application; the others configure gadgets.
var runFlagsForApps = []string{"output", "timeout", "event-type", "buffer-size", "when-full", "log-level", "stats", "emit", "data-dir", "pull", "help"}

// gadgetOnlyFlags lists the gadget flags set on cmd.
func gadgetOnlyFlags(cmd *cobra.Command) []string {
	var out []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if !slices.Contains(runFlagsForApps, f.Name) {
			out = append(out, f.Name)
		}
	})
	return out
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
		return kind == oci.KindWasmBPF, nil
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
	f.Sources[0] = &config.Source{Type: "wasm_bpf", Name: name, Ref: "source.wasm_bpf." + name, WasmBPF: &config.WasmBPFSource{
		Module: module, Args: args, Emit: emit, EventType: old.EventType, BufferSize: old.BufferSize,
		MemoryLimit: config.DefaultWasmBPFMemoryLimit, StopGrace: config.DefaultWasmBPFStopGrace,
	}}
	f.Pipelines[0].Sources = []config.Reference{{Kind: config.KindSource, Type: "wasm_bpf", Name: name}}
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
	src := &config.Source{Type: "gadget", Name: sourceName(gadget), Ref: "", Gadget: gadget, Params: params}
	src.Ref = "source.gadget." + src.Name
	sink := &config.Sink{Type: "stdout", Name: "terminal", Ref: "sink.stdout.terminal", Stdout: &config.StdoutSink{Format: format}}
	// The config's own defaults, but no control socket: a second agent's
	// would take the running agent's place in the data directory.
	agentCfg := config.DefaultAgent()
	agentCfg.Name, _ = os.Hostname()
	queue := config.DefaultQueue()
	queue.WhenFull = "drop_oldest" // a terminal that falls behind loses old lines, not events in the kernel
	return &config.File{
		Agent:   agentCfg,
		Sources: []*config.Source{src},
		Sinks:   []*config.Sink{sink},
		Pipelines: []*config.Pipeline{{
			Name:    "run",
			Sources: []config.Reference{{Kind: config.KindSource, Type: "gadget", Name: src.Name}},
			Sinks:   []config.Reference{{Kind: config.KindSink, Type: "stdout", Name: "terminal"}},
			Queue:   queue,
			Batch:   config.DefaultBatch(),
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

// endOnClosedPipe passes writes on to w and calls closed once a write finds
// that the reader closed the pipe (EPIPE).
type endOnClosedPipe struct {
	w      io.Writer
	closed context.CancelFunc
}

func (e *endOnClosedPipe) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if errors.Is(err, syscall.EPIPE) {
		e.closed()
	}
	return n, err
}
