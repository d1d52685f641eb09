package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sources"
	"github.com/sluice-dev/sluice/wasmbpf"
)

// The gadget-kind options of `sluice run`: how often iterators and toppers
// run, where network programs attach, how snapshots are drawn, and the
// --help listing of a gadget's parameters and fields. Kept apart from the
// command's wiring so another flag library only needs new registrations.

// gadgetRunFlags are the flags of `sluice run` for iterators, map
// iterators, socket filters, TC classifiers and perf_event programs.
type gadgetRunFlags struct {
	interval        time.Duration
	runs            int
	ifaces          []string
	netns           []string
	sampleFrequency int
	sort            string
	maxRows         int
}

func (g *gadgetRunFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	durationVar(fs, &g.interval, "interval", 0, "take a snapshot of the gadget's iterators every `D` (default: once), drain its map iterators every D (default 1s)")
	fs.IntVar(&g.runs, "runs", 0, "stop after `N` snapshots (iterators and map iterators; 0: until interrupted, once for iterators without --interval)")
	fs.StringArrayVar(&g.ifaces, "iface", nil, "attach TC classifier programs to interface `NAME` (repeatable)")
	fs.StringArrayVar(&g.netns, "netns", nil, "run socket filters, TC classifiers and socket iterators in network namespace `PATH` (/run/netns/x, /proc/PID/ns/net; repeatable; default: the host's)")
	fs.IntVar(&g.sampleFrequency, "sample-frequency", 0, "sample each CPU `HZ` times a second with perf_event programs (default 49)")
	fs.StringVar(&g.sort, "sort", "", "order the rows of each snapshot in table output by `FIELDS` (\"-bytes,pid\"; '-' for descending)")
	fs.IntVar(&g.maxRows, "max-rows", 0, "show at most `N` rows of each snapshot in table output (0: all)")
}

// apply sets the flags on the run's source and terminal sink. A terminal
// gets snapshots redrawn in place, as top does.
func (g *gadgetRunFlags) apply(f *config.File, stdout io.Writer) error {
	if g.runs < 0 || g.maxRows < 0 || g.sampleFrequency < 0 || g.interval < 0 {
		return fmt.Errorf("run: --runs, --max-rows, --sample-frequency and --interval cannot be negative")
	}
	if _, err := sinks.ParseSortKeys(g.sort); err != nil {
		return fmt.Errorf("run: --sort: %w", err)
	}
	src := f.Sources[0]
	src.Interval = g.interval
	src.Runs = g.runs
	src.Ifaces = g.ifaces
	src.NetNS = g.netns
	src.SampleFrequency = g.sampleFrequency
	out := f.Sinks[0].Stdout
	out.Sort = g.sort
	out.MaxRows = g.maxRows
	out.Redraw = out.Format == "table" && isTerminalWriter(stdout)
	return nil
}

func isTerminalWriter(w io.Writer) bool {
	type fder interface{ Fd() uintptr }
	if _, ok := w.(fder); !ok {
		return false
	}
	return isTerminal(w)
}

// gadgetHelpFunc is the help of `sluice run`: with a gadget named
// (`sluice run trace_open --help`) it lists the gadget's parameters and
// fields rather than the command's flags. A help function cannot return
// an error: a failure is recorded for run through the context.
func gadgetHelpFunc(images *imageRunFlags, configure func(*config.File)) func(*cobra.Command, []string) {
	return func(c *cobra.Command, args []string) {
		pos := c.Flags().Args()
		if len(pos) != 1 || !c.Flags().Changed("help") {
			c.Parent().HelpFunc()(c, args)
			return
		}
		stderr := c.ErrOrStderr()
		f := runConfig(pos[0], nil, "json")
		if isApp, err := isWasmBPFApp(c.Context(), f, pos[0], images.fetchOptions(stderr)); err != nil || isApp {
			if err == nil {
				appSource(f, pos[0], nil, "records")
				err = appHelp(c.Context(), f, images.fetchOptions(stderr), c.OutOrStdout(), stderr)
			}
			if err != nil {
				failHelp(c.Context(), err)
			}
			return
		}
		// The gadget as the run would build it: a plain object's event
		// type, programs and hints given on the command line count.
		configure(f)
		if err := gadgetHelp(c.Context(), f, images.fetchOptions(stderr), c.OutOrStdout(), stderr); err != nil {
			failHelp(c.Context(), err)
		}
	}
}

// appHelp prints what a wasm-bpf application's embedded eBPF objects will
// make events of: each output and its fields, or why it will not.
func appHelp(ctx context.Context, f *config.File, fetch agent.FetchOptions, stdout, stderr io.Writer) error {
	images, diags := agent.FetchImages(ctx, f, fetch)
	var in *wasmbpf.Inspection
	if !diags.HasErrors() {
		in, diags = agent.InspectApp(f, images)
	}
	if diags.HasErrors() {
		config.NewParser().WriteDiagnostics(stderr, diags, isTerminal(stderr))
		return exitError{code: 1}
	}
	fmt.Fprintf(stdout, "wasm-bpf application %s\n\nIts own arguments follow --; --emit stdout or both makes its printed lines events (fields stream, line).\n", f.Sources[0].Name)
	if len(in.Objects) == 0 {
		fmt.Fprintln(stdout, "\nNo eBPF object lies in the module's data: its events show when it loads one.")
	}
	for _, o := range in.Objects {
		if o.Err != nil {
			fmt.Fprintf(stdout, "\nAn embedded object does not parse: %v\n", o.Err)
			continue
		}
		fmt.Fprintf(stdout, "\nObject with programs %s\n", strings.Join(o.Programs, ", "))
		for _, out := range o.Outputs {
			if out.Err != nil {
				fmt.Fprintf(stdout, "\nOutput %s: no events (%v)\n", out.Map, out.Err)
				continue
			}
			fmt.Fprintf(stdout, "\nOutput %s (struct %s, found by %s), events; fields:\n", out.Map, out.Schema.Type, out.FoundBy)
			for _, fl := range out.Schema.Fields {
				fmt.Fprintf(stdout, "  %s\n", fl.Name)
			}
		}
	}
	return nil
}

// gadgetHelp prints a gadget's parameters (the key to use, the variable,
// type, default, description: gadget.yaml's keys and defaults honoured),
// the flags its program kinds need, and each output's fields.
func gadgetHelp(ctx context.Context, f *config.File, fetch agent.FetchOptions, stdout, stderr io.Writer) error {
	images, diags := agent.FetchImages(ctx, f, fetch)
	if !diags.HasErrors() {
		var gs []agent.GadgetHelp
		gs, diags = agent.GadgetHelpOf(f, images)
		if !diags.HasErrors() {
			for _, g := range gs {
				writeGadgetHelp(stdout, g)
			}
			return nil
		}
	}
	config.NewParser().WriteDiagnostics(stderr, diags, isTerminal(stderr))
	return exitError{code: 1}
}

func writeGadgetHelp(w io.Writer, h agent.GadgetHelp) {
	g := h.Gadget
	spec := g.Spec()
	fmt.Fprintf(w, "gadget %s\n\nParameters (--param NAME=VALUE):\n", spec.Name)
	params := spec.ParamHelp()
	// The Wasm module's own parameters (gadget.yaml params.wasm) are set
	// the same way: one list, by key.
	for _, p := range h.ModuleParams {
		line := fmt.Sprintf("%s=string (the Wasm module's), default %s", p.Key, strconv.Quote(p.Default))
		if p.Description != "" {
			line += ": " + p.Description
		}
		params = append(params, line)
	}
	slices.SortStableFunc(params, func(a, b string) int {
		ka, _, _ := strings.Cut(a, "=")
		kb, _, _ := strings.Cut(b, "=")
		return strings.Compare(ka, kb)
	})
	if len(params) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	for _, p := range params {
		fmt.Fprintf(w, "  %s\n", p)
	}
	if h.Module != "" {
		fmt.Fprintf(w, "\nWasm module: %s\n", h.Module)
	}
	writeFilterHelp(w, spec)
	var progs []string
	for _, p := range spec.Programs {
		line := fmt.Sprintf("  %s (%s)", p.Name, p.Section)
		switch p.Attach {
		case sources.AttachTC:
			line += ": --iface NAME"
		case sources.AttachSocketFilter:
			line += ": the host's network namespace, or --netns PATH"
		case sources.AttachPerfEvent:
			line += fmt.Sprintf(": every CPU, --sample-frequency HZ (default %d)", sources.DefaultSampleFrequency)
		}
		progs = append(progs, line)
	}
	fmt.Fprintf(w, "\nPrograms (--programs, --skip-programs):\n%s\n", strings.Join(progs, "\n"))
	names := g.OutputNames()
	defer fmt.Fprintln(w, "\nEvents of processes in containers also carry container.id, container.name, container.image,\ncontainer.runtime and, for Kubernetes pods, k8s.namespace, k8s.pod, k8s.container.")
	for i, s := range g.Schemas() {
		kind := "events"
		if s.HasField("snapshot_rows") {
			kind = "snapshots (--interval, --runs, --sort, --max-rows)"
		}
		fmt.Fprintf(w, "\nOutput %s (struct %s), %s; fields:\n", names[i], s.Type, kind)
		if i < len(spec.Streams) && spec.Streams[i].FoundBy != "marker" {
			fmt.Fprintf(w, "  (event type: %s)\n", spec.Streams[i].TypeChoice())
		}
		for _, line := range sources.FieldHelp(s) {
			fmt.Fprintf(w, "  %s\n", line)
		}
	}
}
