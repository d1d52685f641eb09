package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/sources"
)

// The filter, container and column flags of `sluice run`, kept apart from
// the flag set that carries them so that the same logic serves whichever
// command-line library registers them.

// runFilters are the filter settings of one `sluice run`.
type runFilters struct {
	pid, tid       uint
	uid, gid       optionalUint
	comm           string
	containers     []string
	containersOnly bool
	filters        []string // host-side, ANDed
	fields         string
	includeSelf    bool
	runtimes       []string
}

// optionalUint is a uint flag that knows whether it was given.
type optionalUint struct {
	v   uint32
	set bool
}

func (o *optionalUint) String() string {
	if !o.set {
		return ""
	}
	return strconv.FormatUint(uint64(o.v), 10)
}

// Type names the value in help, for pflag.
func (o *optionalUint) Type() string { return "id" }

func (o *optionalUint) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return fmt.Errorf("want an id from 0 to %d", uint32(1<<32-2))
	}
	o.v, o.set = uint32(n), true
	return nil
}

func (r *runFilters) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.UintVar(&r.pid, "pid", 0, "only events of process `ID` (in the kernel)")
	fs.UintVar(&r.tid, "tid", 0, "only events of thread `ID` (in the kernel)")
	fs.Var(&r.uid, "uid", "only events of user `ID` (in the kernel)")
	fs.Var(&r.gid, "gid", "only events of group `ID` (in the kernel)")
	fs.StringVar(&r.comm, "comm", "", "only events of processes called `NAME` (comm, in the kernel)")
	fs.StringArrayVar(&r.containers, "container", nil, "only events of the container called `NAME` (repeatable; in the kernel, through its mount namespace)")
	fs.BoolVar(&r.containersOnly, "containers", false, "only events of processes in containers")
	fs.StringArrayVar(&r.filters, "filter", nil, "host-side field filter `EXPR`, e.g. 'comm==curl,ret<0' (== != >= <= > < ~ !~; repeatable, all must hold)")
	fs.StringVar(&r.fields, "fields", "", "show only these `FIELDS`, comma-separated, in this order")
	fs.BoolVar(&r.includeSelf, "include-self", false, "keep the events of sluice's own process")
	fs.StringArrayVar(&r.runtimes, "runtime", nil, "container runtime API `SOCKET` (Docker Engine API: Docker's or Podman's; repeatable; default: the usual sockets that exist)")
	for _, name := range []string{"pid", "tid", "uid", "gid", "comm", "container", "filter", "fields"} {
		cmd.RegisterFlagCompletionFunc(name, cobra.NoFileCompletions)
	}
}

// apply puts the settings into the one-source config of `sluice run`.
func (r *runFilters) apply(f *config.File) error {
	src := f.Sources[0]
	if r.comm != "" && len(r.comm) > config.MaxCommLen {
		return fmt.Errorf("run: --comm %q is longer than the %d bytes the kernel keeps", r.comm, config.MaxCommLen)
	}
	if r.pid > 1<<32-1 || r.tid > 1<<32-1 {
		return fmt.Errorf("run: --pid and --tid take a process id")
	}
	filter := &config.SourceFilter{
		PID: uint32(r.pid), TID: uint32(r.tid), Comm: r.comm,
		Containers: r.containers, Fields: strings.Join(r.filters, ","),
	}
	if r.uid.set {
		filter.UID = &r.uid.v
	}
	if r.gid.set {
		filter.GID = &r.gid.v
	}
	if !filter.IsZero() {
		src.Filter = filter
	}
	src.ContainersOnly = r.containersOnly
	f.Agent.FilterSelf = !r.includeSelf
	if len(r.runtimes) > 0 {
		f.Agent.Containers.Runtimes = r.runtimes
	}
	if r.fields != "" {
		var fields []string
		for _, fl := range strings.Split(r.fields, ",") {
			if fl = strings.TrimSpace(fl); fl != "" {
				fields = append(fields, fl)
			}
		}
		f.Sinks[0].Stdout.Fields = fields
	}
	return nil
}

// writeFilterHelp says which filters of `sluice run` a gadget runs in the
// kernel (a filtered event then costs no ring buffer space) and which on
// the host.
func writeFilterHelp(w io.Writer, spec *sources.GadgetSpec) {
	var kernel []string
	for _, f := range spec.FilterSupport() {
		if f != sources.FilterExcludePID {
			kernel = append(kernel, f)
		}
	}
	if len(kernel) == 0 {
		fmt.Fprintln(w, "\nFilters: none in the kernel (the gadget lacks the filter contract); --pid, --comm and the rest\nfilter its fields on the host, --filter EXPR any field.")
		return
	}
	fmt.Fprintf(w, "\nFilters in the kernel (a filtered event costs no ring buffer space): %s\n(--pid, --tid, --uid, --gid, --comm, --container, --containers); --filter EXPR runs on the host.\n", strings.Join(kernel, ", "))
}
