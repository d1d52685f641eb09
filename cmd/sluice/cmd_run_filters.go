package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/config"
)

// The filter, container and column flags of `sluice run`, kept apart from
// the flag set that carries them so that the same logic serves whichever
// command-line library registers them.

// runFilters are the filter settings of one `sluice run`.
type runFilters struct {
	pid, tid       uint
	uid, gid       optionalUint
	comm           string
	containers     stringList
	containersOnly bool
	filters        stringList // host-side, ANDed
	fields         string
	includeSelf    bool
	runtimes       stringList
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

func (o *optionalUint) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return fmt.Errorf("want an id from 0 to %d", uint32(1<<32-2))
	}
	o.v, o.set = uint32(n), true
	return nil
}

func (r *runFilters) register(fs *flag.FlagSet) {
	fs.UintVar(&r.pid, "pid", 0, "only events of this process `ID` (in the kernel)")
	fs.UintVar(&r.tid, "tid", 0, "only events of this thread `ID` (in the kernel)")
	fs.Var(&r.uid, "uid", "only events of this user `ID` (in the kernel)")
	fs.Var(&r.gid, "gid", "only events of this group `ID` (in the kernel)")
	fs.StringVar(&r.comm, "comm", "", "only events of processes with this `NAME` (comm, in the kernel)")
	fs.Var(&r.containers, "container", "only events of the container called `NAME` (repeatable; in the kernel, through its mount namespace)")
	fs.BoolVar(&r.containersOnly, "containers", false, "only events of processes in containers")
	fs.Var(&r.filters, "filter", "host-side field filter `EXPR`, e.g. 'comm==curl,ret<0' (== != >= <= > < ~ !~; repeatable)")
	fs.StringVar(&r.fields, "fields", "", "show only these `FIELDS`, comma-separated, in this order")
	fs.BoolVar(&r.includeSelf, "include-self", false, "keep the events of sluice's own process")
	fs.Var(&r.runtimes, "runtime", "container runtime API `SOCKET` (Docker Engine API: Docker's or Podman's; repeatable; default: the usual sockets that exist)")
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

// helpRequested reports whether args ask for help, and returns args
// without the help flag, so that `sluice run GADGET --help` can describe
// the gadget.
func helpRequested(args []string) (bool, []string) {
	var rest []string
	help := false
	for i, a := range args {
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			help = true
			continue
		}
		rest = append(rest, a)
	}
	return help, rest
}

// printGadgetHelp describes the gadget of a `sluice run` config: its
// parameters with types, defaults and descriptions, the filters it runs in
// the kernel, and the fields of its events.
func printGadgetHelp(ctx context.Context, w io.Writer, f *config.File, fetch agent.FetchOptions) error {
	images, diags := agent.FetchImages(ctx, f, fetch)
	if diags.HasErrors() {
		return fmt.Errorf("describe gadget: %w", diags)
	}
	docs, diags := agent.Describe(f, images)
	if diags.HasErrors() {
		return fmt.Errorf("describe gadget: %w", diags)
	}
	for _, d := range docs {
		fmt.Fprintf(w, "\nGadget %s", d.Gadget)
		if d.Description != "" {
			fmt.Fprintf(w, ": %s", d.Description)
		}
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		if len(d.Params) == 0 {
			fmt.Fprintln(w, "\nParameters: none")
		} else {
			fmt.Fprintln(w, "\nParameters (--param NAME=VALUE):")
			fmt.Fprintln(tw, "  NAME\tTYPE\tDEFAULT\tDESCRIPTION")
			for _, p := range d.Params {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Name, p.Type, orDash(p.Default), p.Description)
			}
			tw.Flush()
		}
		if len(d.KernelFilters) > 0 {
			fmt.Fprintf(w, "\nKernel filters: %s (filtered events cost no ring buffer space);\n--filter and anything else run on the host.\n", strings.Join(slices.DeleteFunc(slices.Clone(d.KernelFilters), func(s string) bool { return s == "exclude_pid" }), ", "))
		} else {
			fmt.Fprintln(w, "\nKernel filters: none (the gadget lacks the filter contract); --pid, --comm and the rest filter its fields on the host.")
		}
		fmt.Fprintln(w, "\nFields (--fields, --filter):")
		fmt.Fprintln(tw, "  NAME\tTYPE\tDESCRIPTION")
		for _, fl := range d.Fields {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", fl.Name, fl.Type, fl.Description)
		}
		tw.Flush()
		fmt.Fprintln(w, "\nEvents of processes in containers also carry container.id, container.name, container.image,\ncontainer.runtime and, for Kubernetes pods, k8s.namespace, k8s.pod, k8s.container.")
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
