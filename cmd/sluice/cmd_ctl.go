package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/config"
)

// ctlFlags find the agent's control socket.
type ctlFlags struct {
	socket, config string
}

func (f *ctlFlags) client(cmd *cobra.Command) (*agent.ControlClient, error) {
	path, err := controlSocket(f.socket, f.config, cmd.ErrOrStderr())
	if err != nil {
		return nil, err
	}
	return agent.NewControlClient(path), nil
}

// newCtlCommand is `sluice ctl`: its commands talk to a running agent
// through the control socket.
func newCtlCommand() *cobra.Command {
	var f ctlFlags
	cmd := &cobra.Command{
		Use:   "ctl",
		Short: "Steer a running agent: status, reload, tap, top",
		Long: `Steer a running agent through its control socket (agent.control_socket, by
default control.sock in its data directory).

The socket is, in order: --socket, $SLUICE_CONTROL_SOCKET, the control_socket
of the config file given with --config, /var/lib/sluice/control.sock.`,
		Example: `  sluice ctl status
  sluice ctl --config /etc/sluice/sluice.hcl reload
  sluice ctl tap source.exec --limit 10
  sluice ctl top`,
		Args: subcommandArgs,
		RunE: showHelp,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.socket, "socket", "", "control socket `path` of the agent")
	pf.StringVarP(&f.config, "config", "c", "", "the agent's config `file`, to find its control socket")
	cmd.MarkPersistentFlagFilename("config", "hcl")
	cmd.AddCommand(ctlStatusCommand(&f), ctlReloadCommand(&f), ctlTapCommand(&f), ctlTopCommand(&f))
	return cmd
}

var ctlFormats = []string{"table", "json"}

func ctlStatusCommand(f *ctlFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the agent, its pipelines and components",
		Example: `  sluice ctl status
  sluice ctl status -o json | jq '.pipelines[].state'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			return ctlStatus(cmd.Context(), c, output, cmd.OutOrStdout())
		},
	}
	enumVarP(cmd, cmd.Flags(), &output, "output", "o", "table", ctlFormats, "output format")
	return cmd
}

func ctlReloadCommand(f *ctlFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Re-read the agent's config file, as SIGHUP does",
		Long: `Re-read the agent's config file, as SIGHUP does, and apply what changed. A config
with errors is refused (exit status 1) and the agent runs on unchanged.`,
		Example: `  sluice ctl reload
  sluice ctl reload -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			return ctlReload(cmd.Context(), c, output, cmd.OutOrStdout())
		},
	}
	enumVarP(cmd, cmd.Flags(), &output, "output", "o", "table", ctlFormats, "output format")
	return cmd
}

func ctlTapCommand(f *ctlFlags) *cobra.Command {
	var (
		output, pipe string
		limit        int
		sample       float64
	)
	cmd := &cobra.Command{
		Use:   "tap EDGE",
		Short: "Print the events passing an edge of the running pipelines",
		Long: `Print the events passing an edge of the running pipelines: source.NAME,
stage.NAME.in, stage.NAME.out or sink.NAME. Nobody tapping costs the agent
nothing; a slow reader loses events (counted), never slows the pipeline.`,
		Example: `  sluice ctl tap source.exec --limit 10
  sluice ctl tap stage.users.out --sample 0.01 -o table
  sluice ctl tap sink.bus --pipeline default`,
		Args: exactArgs("EDGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if sample < 0 || sample > 1 {
				return usageErrorf(cmd, "--sample %g: want a fraction in (0, 1]", sample)
			}
			if limit < 0 {
				return usageErrorf(cmd, "--limit %d: want 0 or more", limit)
			}
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			return ctlTap(cmd.Context(), c, agent.TapRequest{Edge: args[0], Pipeline: pipe, Limit: limit, Sample: sample}, output, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.IntVarP(&limit, "limit", "n", 0, "stop after `N` events (0: until interrupted)")
	fs.Float64Var(&sample, "sample", 0, "take this `fraction` of the events, evenly spaced (0 < R <= 1)")
	fs.StringVar(&pipe, "pipeline", "", "only this `pipeline` (default: every pipeline with the edge)")
	enumVarP(cmd, fs, &output, "output", "o", "json", []string{"json", "table"}, "output format")
	for _, n := range []string{"limit", "sample", "pipeline"} {
		cmd.RegisterFlagCompletionFunc(n, cobra.NoFileCompletions)
	}
	return cmd
}

func ctlTopCommand(f *ctlFlags) *cobra.Command {
	var (
		output   string
		interval time.Duration
		count    int
	)
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Show live events/s, drops and queue fill per component",
		Example: `  sluice ctl top
  sluice ctl top --interval 5s -n 3 -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval <= 0 {
				return usageErrorf(cmd, "--interval %s: want a positive duration", interval)
			}
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			stdout := cmd.OutOrStdout()
			return ctlTop(cmd.Context(), c, topOptions{interval: interval, count: count, format: output, terminal: isTerminal(stdout)}, stdout)
		},
	}
	fs := cmd.Flags()
	durationVar(fs, &interval, "interval", time.Second, "refresh every `D`")
	fs.IntVarP(&count, "count", "n", 0, "stop after `COUNT` refreshes (0: until interrupted)")
	enumVarP(cmd, fs, &output, "output", "o", "table", ctlFormats, "output format")
	cmd.RegisterFlagCompletionFunc("interval", cobra.NoFileCompletions)
	cmd.RegisterFlagCompletionFunc("count", cobra.NoFileCompletions)
	return cmd
}

// controlSocket finds the agent's control socket (see ctlUsage).
func controlSocket(flagValue, configPath string, stderr io.Writer) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if env := os.Getenv("SLUICE_CONTROL_SOCKET"); env != "" {
		return env, nil
	}
	if configPath != "" {
		f, _, err := loadConfig(configPath, stderr)
		if err != nil {
			return "", err
		}
		if f.Agent.ControlSocket == "" {
			return "", fmt.Errorf("%s: control_socket is \"\": that agent has no control API", configPath)
		}
		return f.Agent.ControlSocket, nil
	}
	return filepath.Join(config.DefaultDataDir, config.DefaultControlSocketName), nil
}

// ctlStatus prints the agent's status.
func ctlStatus(ctx context.Context, c *agent.ControlClient, format string, w io.Writer) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	writeStatus(w, st)
	return nil
}

func writeStatus(w io.Writer, st *agent.Status) {
	ready := "no"
	if st.Ready {
		ready = "yes"
	}
	fmt.Fprintf(w, "agent %s  version %s  pid %d  up %s  health %s  ready %s\n",
		st.Agent, st.Version, st.PID, (time.Duration(st.UptimeSeconds) * time.Second).String(), st.Health, ready)
	for _, f := range st.Failing {
		fmt.Fprintf(w, "  failing: %s\n", f)
	}
	if r := st.LastReload; r != nil {
		what := "ok"
		if !r.OK {
			what = "refused: " + r.Error
		}
		fmt.Fprintf(w, "last reload %s: %s (%d changes)\n", r.Time.Local().Format(time.DateTime), what, len(r.Changes))
	}
	for _, p := range st.Pipelines {
		fmt.Fprintf(w, "\npipeline %s  %s  queue %s\n", p.Name, p.State, fill(p.Queue))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  KIND\tNAME\tTYPE\tSTATE\tRECEIVED\tSENT\tDROPPED\tERRORS\tQUEUE\tDIGEST")
		row := func(kind string, c agent.ComponentStatus) {
			q := ""
			if c.Queue != nil {
				q = fill(*c.Queue)
			}
			digest := c.Digest
			if len(digest) > 12 {
				digest = digest[:12]
			}
			state := c.State
			if c.Error != "" {
				state += " (" + c.Error + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", kind, c.Name, c.Type, state,
				c.Counts.Received, c.Counts.Sent, c.Counts.Dropped, c.Counts.Errors, q, digest)
		}
		for _, c := range p.Sources {
			row("source", c)
		}
		for _, c := range p.Stages {
			row("stage", c)
		}
		for _, c := range p.Sinks {
			row("sink", c)
		}
		tw.Flush()
	}
}

func fill(q agent.QueueStatus) string {
	if q.MaxEvents == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d (%.0f%%, %s)", q.Events, q.MaxEvents, 100*float64(q.Events)/float64(q.MaxEvents), q.Policy)
}

// errReloadRefused is the exit status of a reload the agent refused.
var errReloadRefused = exitError{code: 1}

// ctlReload asks the agent to reload and prints what changed, or the new
// config's diagnostics; a refused config exits 1.
func ctlReload(ctx context.Context, c *agent.ControlClient, format string, w io.Writer) error {
	res, err := c.Reload(ctx)
	if err != nil {
		return err
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		if res.Rendered != "" {
			io.WriteString(w, res.Rendered)
		}
		if !res.OK {
			fmt.Fprintf(w, "reload refused: %s\n", res.Error)
		} else {
			fmt.Fprintf(w, "reloaded in %dms: %s\n", res.TookMS, describeChanges(res.Changes))
		}
	}
	if !res.OK {
		return errReloadRefused
	}
	return nil
}

func describeChanges(changes []agent.Change) string {
	if len(changes) == 0 {
		return "nothing changed"
	}
	var parts []string
	for _, c := range changes {
		s := c.Kind + " " + c.Name + " " + c.Action
		if c.Pipeline != "" {
			s += " (pipeline " + c.Pipeline + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// ctlTap prints the events passing an edge until the limit or ctx ends.
func ctlTap(ctx context.Context, c *agent.ControlClient, req agent.TapRequest, format string, w, stderr io.Writer) error {
	// A stream cannot be aligned after the fact: fixed widths.
	const row = "%-10s %-20s %-30s %-12s %8s  %s\n"
	table := format == "table"
	if table {
		fmt.Fprintf(w, row, "PIPELINE", "EDGE", "TIME", "SOURCE", "SEQ", "FIELDS")
	}
	var dropped uint64
	err := c.Tap(ctx, req, func(l agent.TapLine) error {
		if l.Dropped != nil {
			dropped = *l.Dropped
			return nil
		}
		if !table {
			_, err := fmt.Fprintf(w, "%s\n", l.Event)
			return err
		}
		fields, err := orderedFields(l.Event)
		if err != nil {
			return err
		}
		var rest []string
		get := func(k string) string {
			for _, f := range fields {
				if f.key == k {
					return f.value
				}
			}
			return ""
		}
		for _, f := range fields {
			if !slices.Contains([]string{"time", "source", "seq", "host", "gadget"}, f.key) {
				rest = append(rest, f.key+"="+f.value)
			}
		}
		_, err = fmt.Fprintf(w, row, l.Pipeline, l.Edge, get("time"), get("source"), get("seq"), strings.Join(rest, " "))
		return err
	})
	if dropped > 0 {
		fmt.Fprintf(stderr, "sluice ctl tap: %d events passed while the tap could not keep up (the pipeline lost none)\n", dropped)
	}
	return err
}

type field struct{ key, value string }

// orderedFields reads a JSON object's members in their order, values as
// compact text (strings unquoted and escaped for a terminal).
func orderedFields(raw json.RawMessage) ([]field, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("read tapped event: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	var out []field
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		val := string(v)
		var s string
		if json.Unmarshal(v, &s) == nil {
			val = strconv.Quote(s)
			val = val[1 : len(val)-1] // escaped, so no event can drive the terminal
		}
		out = append(out, field{k, val})
	}
	return out, nil
}

type topOptions struct {
	interval time.Duration
	count    int
	format   string
	terminal bool
}

// topRow is one component in `ctl top`.
type topRow struct {
	Pipeline    string  `json:"pipeline"`
	Kind        string  `json:"kind"`
	Name        string  `json:"name"`
	InPerSec    float64 `json:"in_per_s"`
	OutPerSec   float64 `json:"out_per_s"`
	DropsPerSec float64 `json:"drops_per_s"`
	Dropped     uint64  `json:"dropped"`
	Errors      uint64  `json:"errors"`
	State       string  `json:"state"`
	QueueEvents int     `json:"queue_events,omitempty"`
	QueueMax    int     `json:"queue_max,omitempty"`
}

// topFrame is one refresh of `ctl top`.
type topFrame struct {
	Time  time.Time `json:"time"`
	Agent string    `json:"agent"`
	Rows  []topRow  `json:"components"`
}

// ctlTop shows live rates per component, refreshing every interval: on a
// terminal it redraws the screen, elsewhere (or with -o json) it writes a
// frame per refresh.
func ctlTop(ctx context.Context, c *agent.ControlClient, opts topOptions, w io.Writer) error {
	prev, err := c.Status(ctx)
	if err != nil {
		return err
	}
	t := time.NewTicker(opts.interval)
	defer t.Stop()
	for n := 0; opts.count == 0 || n < opts.count; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cur, err := c.Status(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		frame := topRates(prev, cur)
		prev = cur
		if opts.format == "json" {
			if err := json.NewEncoder(w).Encode(frame); err != nil {
				return err
			}
			continue
		}
		if opts.terminal {
			io.WriteString(w, "\x1b[H\x1b[2J") // home, clear: redraw in place
		}
		writeTop(w, frame, opts.interval)
	}
	return nil
}

// topRates computes each component's rates between two status reads.
func topRates(prev, cur *agent.Status) topFrame {
	secs := cur.Time.Sub(prev.Time).Seconds()
	if secs <= 0 {
		secs = 1
	}
	old := map[string]agent.Counts{}
	for _, p := range prev.Pipelines {
		old["pipeline/"+p.Name] = p.Counts
		for _, group := range [][]agent.ComponentStatus{p.Sources, p.Stages, p.Sinks} {
			for _, c := range group {
				old[p.Name+"/"+c.Name] = c.Counts
			}
		}
	}
	rate := func(now, before uint64) float64 {
		if now < before {
			return 0 // counters restarted
		}
		return float64(now-before) / secs
	}
	f := topFrame{Time: cur.Time, Agent: cur.Agent}
	add := func(pipe, kind string, key string, c agent.Counts, state string, q *agent.QueueStatus) {
		o := old[key]
		r := topRow{Pipeline: pipe, Kind: kind, State: state,
			InPerSec: rate(c.Received, o.Received), OutPerSec: rate(c.Sent, o.Sent), DropsPerSec: rate(c.Dropped, o.Dropped),
			Dropped: c.Dropped, Errors: c.Errors}
		if q != nil {
			r.QueueEvents, r.QueueMax = q.Events, q.MaxEvents
		}
		f.Rows = append(f.Rows, r)
	}
	for _, p := range cur.Pipelines {
		for _, c := range p.Sources {
			add(p.Name, "source", p.Name+"/"+c.Name, c.Counts, c.State, nil)
			f.Rows[len(f.Rows)-1].Name = c.Name
		}
		q := p.Queue
		add(p.Name, "queue", "pipeline/"+p.Name, p.Counts, p.State, &q)
		f.Rows[len(f.Rows)-1].Name = p.Name
		for _, c := range p.Stages {
			add(p.Name, "stage", p.Name+"/"+c.Name, c.Counts, c.State, nil)
			f.Rows[len(f.Rows)-1].Name = c.Name
		}
		for _, c := range p.Sinks {
			add(p.Name, "sink", p.Name+"/"+c.Name, c.Counts, c.State, c.Queue)
			f.Rows[len(f.Rows)-1].Name = c.Name
		}
	}
	return f
}

func writeTop(w io.Writer, f topFrame, interval time.Duration) {
	fmt.Fprintf(w, "sluice top  agent %s  %s  (every %s, Ctrl-C to quit)\n\n", f.Agent, f.Time.Local().Format(time.TimeOnly), interval)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PIPELINE\tKIND\tNAME\tIN/S\tOUT/S\tDROPS/S\tDROPPED\tERRORS\tQUEUE\tSTATE\t")
	for _, r := range f.Rows {
		q := ""
		if r.QueueMax > 0 {
			q = fmt.Sprintf("%d/%d", r.QueueEvents, r.QueueMax)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%d\t%d\t%s\t%s\t\n", r.Pipeline, r.Kind, r.Name,
			r.InPerSec, r.OutPerSec, r.DropsPerSec, r.Dropped, r.Errors, q, r.State)
	}
	tw.Flush()
}
