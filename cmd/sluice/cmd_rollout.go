package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/wasmstages"
)

// rolloutOptions are what `sluice rollout` does, from its flags: the work
// is runRollout's, so that any command-line front end can call it.
type rolloutOptions struct {
	Action string // "set", "status" or "undo"
	Stage  string
	Ref    string // for "set"
	Group  string
	// Control says how to reach the buckets (URL, names, auth, TLS).
	Control config.ControlNATS
	// Wait bounds the wait for convergence; 0 does not wait (set, undo) or
	// looks once (status).
	Wait time.Duration
	// Live redraws a table in place (a terminal) instead of printing a
	// line per change.
	Live bool
}

// newRolloutCommand is `sluice rollout`: it writes the version a stage
// must run into the fleet's control bucket (or undoes that) and follows the
// agents' status until they all run it.
func newRolloutCommand() *cobra.Command {
	var f rolloutFlags
	cmd := &cobra.Command{
		Use:   "rollout STAGE REF",
		Short: "Roll a stage version out to a fleet of agents over NATS",
		Long: `Roll a Wasm stage version out to every agent connected to the fleet's control
bucket (agent { control { nats {} } }), or to the agents of one group, and
follow their status until they all run it.

REF is an image reference (registry/repo:tag, registry/repo@sha256:..., with
or without oci://) or a bare digest (sha256:...) of the repository the
agents' config names. The command writes it to the control bucket's key STAGE
(GROUP.STAGE with --group), then shows which agents run which digest, which
are pending and which refused the version and why: live on a terminal, a
line per change otherwise. It exits 0 once every live agent runs one digest,
1 if they did not within --wait (naming the agents that failed and why).
Requests are retried while a NATS node is lost.

The connection settings are the flags', or those of an agent config's control
block (--config), whose agent group is then the default --group. An
authentication flag replaces the config's method; TLS flags replace the
config's files one by one.`,
		Example: `  sluice rollout no_shells registry.lan/stages/no-shells:v2 --server nats://nats.lan:4222
  sluice rollout no_shells registry.lan/stages/no-shells@sha256:4f1c... --group web --wait 2m
  sluice rollout no_shells sha256:4f1c... --config /etc/sluice/agent.hcl   # the agents' repository, another digest
  sluice rollout status no_shells                 # who runs what, until they converge
  sluice rollout undo no_shells                   # back to the key's previous value`,
		Args:              exactArgs("STAGE", "REF"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkRolloutRef(args[1]); err != nil {
				msg := err.Error()
				// "sluice rollout stauts x" reads as the stage stauts.
				if cmd.SuggestionsMinimumDistance <= 0 {
					cmd.SuggestionsMinimumDistance = 2 // cobra's default, which only its own lookup sets
				}
				if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
					msg += "; did you mean " + orList(s) + "?"
				}
				return usageErrorf(cmd, "%s", msg)
			}
			return f.run(cmd, rolloutOptions{Action: "set", Stage: args[0], Ref: args[1]})
		},
	}
	f.register(cmd)
	cmd.AddCommand(rolloutStatusCommand(), rolloutUndoCommand())
	return cmd
}

func rolloutStatusCommand() *cobra.Command {
	var f rolloutFlags
	cmd := &cobra.Command{
		Use:   "status STAGE",
		Short: "Show which agents run which version of a stage, until they converge",
		Long: `Show the control bucket's value for STAGE (GROUP.STAGE with --group) and every
agent's state: the digest it runs, where its desired version comes from, and
why it refused one. It follows the agents until they run one digest (exit 0)
or --wait runs out (exit 1); --wait 0 looks once.`,
		Example: `  sluice rollout status no_shells
  sluice rollout status no_shells --group web --wait 0    # look once: exit 0 only if converged
  sluice rollout status no_shells --config /etc/sluice/agent.hcl`,
		Args:              exactArgs("STAGE"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, rolloutOptions{Action: "status", Stage: args[0]})
		},
	}
	f.register(cmd)
	return cmd
}

func rolloutUndoCommand() *cobra.Command {
	var f rolloutFlags
	cmd := &cobra.Command{
		Use:   "undo STAGE",
		Short: "Put back the version a stage's key named before",
		Long: `Put back the value the control bucket's key STAGE (GROUP.STAGE with --group)
held before its current one, or delete the key when it held none: its agents
then return to the next key (STAGE for a group's agents) or their config. It
follows the agents like a rollout; --wait 0 does not wait.`,
		Example: `  sluice rollout undo no_shells
  sluice rollout undo no_shells --group web --wait 0`,
		Args:              exactArgs("STAGE"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, rolloutOptions{Action: "undo", Stage: args[0]})
		},
	}
	f.register(cmd)
	return cmd
}

// rolloutFlags are the flags every rollout command takes: how to reach
// the control buckets, which agents, how long to wait.
type rolloutFlags struct {
	client       natsClientFlags
	config       string
	group        string
	bucket       string
	statusBucket string
	replicas     int
	wait         time.Duration
}

func (f *rolloutFlags) register(cmd *cobra.Command) {
	f.client.register(cmd)
	fs := cmd.Flags()
	fs.Lookup("server").Usage = "NATS server `URL`, or a comma-separated list of a cluster's (default: the --config control block's, else $NATS_URL, else " + config.DefaultNATSURL + ")"
	fs.StringVarP(&f.config, "config", "c", "", "take the connection settings and the agent group from this agent config `file`'s control block")
	fs.StringVarP(&f.group, "group", "g", "", "only the agents of this `group` (the key GROUP.STAGE, which wins over STAGE for them)")
	fs.StringVar(&f.bucket, "bucket", "", "the control KV `bucket` (default: the --config control block's, else "+config.DefaultControlBucket+")")
	fs.StringVar(&f.statusBucket, "status-bucket", "", "the status KV `bucket` (default: BUCKET"+config.StatusBucketSuffix+")")
	fs.IntVar(&f.replicas, "replicas", 0, "replicas of the buckets when they must be created, 1 to 5 (default: the --config control block's, else 1)")
	durationVar(fs, &f.wait, "wait", 60*time.Second, "how long to follow the agents until they converge (0: do not wait; status looks once)")
	cmd.MarkFlagFilename("config", "hcl")
	for _, n := range []string{"group", "bucket", "status-bucket", "replicas", "wait"} {
		cmd.RegisterFlagCompletionFunc(n, cobra.NoFileCompletions)
	}
}

// run checks the flags, works out the control connection and runs opts.
func (f *rolloutFlags) run(cmd *cobra.Command, opts rolloutOptions) error {
	if err := f.client.check(cmd); err != nil {
		return err
	}
	if opts.Stage == "" || strings.Contains(opts.Stage, ".") {
		return usageErrorf(cmd, "%q is not a stage name (a group is --group)", opts.Stage)
	}
	if cmd.Flags().Changed("replicas") && (f.replicas < 1 || f.replicas > 5) {
		return usageErrorf(cmd, "--replicas takes 1 to 5")
	}
	if f.wait < 0 {
		return usageErrorf(cmd, "--wait takes a positive duration")
	}
	ctl, group, err := f.control(cmd)
	if err != nil {
		return err
	}
	opts.Control, opts.Group = ctl, group
	opts.Wait, opts.Live = f.wait, isTerminal(cmd.OutOrStdout())
	return runRollout(cmd.Context(), opts, cmd.OutOrStdout())
}

// control returns the control connection and the group the flags name:
// the --config file's control block and agent group, or the defaults, with
// the flags given on top.
func (f *rolloutFlags) control(cmd *cobra.Command) (config.ControlNATS, string, error) {
	flags := cmd.Flags()
	so := f.client.sinkOptions() // the flags, $NATS_URL, $NATS_PASSWORD, $NATS_TOKEN
	ctl := config.ControlNATS{URL: so.URL, Bucket: config.DefaultControlBucket, Replicas: config.DefaultControlReplicas}
	ctl.User, ctl.Password, ctl.Token, ctl.NKeySeedFile, ctl.CredsFile = so.User, so.Password, so.Token, so.NKeySeedFile, so.CredsFile
	group := f.group
	if f.config != "" {
		file, _, err := loadConfig(f.config, cmd.ErrOrStderr())
		if err != nil {
			return ctl, "", err
		}
		if file.Agent.Control == nil || file.Agent.Control.NATS == nil {
			return ctl, "", fmt.Errorf("rollout: %s has no control block (agent { control { nats {} } })", f.config)
		}
		cfg := *file.Agent.Control.NATS
		if flags.Changed("server") {
			cfg.URL = so.URL
		}
		// Two authentication methods would be refused: a flag's replaces
		// the config's.
		if slices.ContainsFunc([]string{"creds", "nkey", "user", "token"}, flags.Changed) {
			cfg.User, cfg.Password, cfg.Token, cfg.NKeySeedFile, cfg.CredsFile = so.User, so.Password, so.Token, so.NKeySeedFile, so.CredsFile
		}
		ctl = cfg
		if !flags.Changed("group") {
			group = file.Agent.Group // the config's agents are the natural target
		}
	}
	for _, o := range []struct {
		dst *string
		v   string
	}{{&ctl.CAFile, so.CAFile}, {&ctl.CertFile, so.CertFile}, {&ctl.KeyFile, so.KeyFile}, {&ctl.Bucket, f.bucket}} {
		if o.v != "" {
			*o.dst = o.v
		}
	}
	switch {
	case f.statusBucket != "":
		ctl.StatusBucket = f.statusBucket
	case f.bucket != "" || ctl.StatusBucket == "":
		ctl.StatusBucket = ctl.Bucket + config.StatusBucketSuffix
	}
	if f.replicas > 0 {
		ctl.Replicas = f.replicas
	}
	return ctl, group, nil
}

// checkRolloutRef refuses a value the agents could not use.
func checkRolloutRef(ref string) error {
	switch {
	case strings.HasPrefix(ref, "sha256:"):
		_, err := digest.Parse(ref)
		return err
	case oci.LooksLikeReference(ref):
		_, err := oci.ParseReference(ref)
		return err
	}
	return fmt.Errorf("%q is neither an image reference (registry/repo:tag, registry/repo@sha256:...) nor a digest (sha256:...)", ref)
}

// runRollout does what opts say and follows the agents' status until they
// converge or opts.Wait runs out.
func runRollout(ctx context.Context, opts rolloutOptions, out io.Writer) error {
	if opts.Stage == "" || strings.Contains(opts.Stage, ".") {
		return fmt.Errorf("rollout: %q is not a stage name", opts.Stage)
	}
	if opts.Action == "set" {
		if err := checkRolloutRef(opts.Ref); err != nil {
			return fmt.Errorf("rollout: %w", err)
		}
	}
	conn, err := agent.ControlConnectOptions(&opts.Control, "sluice rollout")
	if err != nil {
		return err
	}
	// A cluster that loses a node answers again within seconds: requests
	// are retried until the wait (at least half a minute) runs out.
	giveUp := time.Now().Add(max(opts.Wait, 30*time.Second))
	conn = append(conn, nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	nc, err := nats.Connect(opts.Control.URL, conn...)
	if err != nil {
		return fmt.Errorf("rollout: connect to %s: %w", opts.Control.URL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	var control, status jetstream.KeyValue
	if err := retry(ctx, giveUp, func(ctx context.Context) (err error) {
		control, status, err = agent.OpenControlBuckets(ctx, js, &opts.Control)
		return err
	}); err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	t := rolloutTarget{stage: opts.Stage, group: opts.Group, key: agent.ControlKey(opts.Group, opts.Stage)}
	switch opts.Action {
	case "set":
		var rev uint64
		if err := retry(ctx, giveUp, func(ctx context.Context) (err error) {
			rev, err = control.PutString(ctx, t.key, opts.Ref)
			return err
		}); err != nil {
			return fmt.Errorf("rollout: write %s: %w", t.key, err)
		}
		t.rev, t.value = rev, opts.Ref
		fmt.Fprintf(out, "%s = %s (revision %d)\n", t.key, printable(opts.Ref), rev)
	case "undo":
		if err := undo(ctx, control, &t); err != nil {
			return err
		}
		if t.deleted {
			fmt.Fprintf(out, "%s deleted: its agents return to the next key or their config (revision %d)\n", t.key, t.rev)
		} else {
			fmt.Fprintf(out, "%s = %s (revision %d, the value before the last)\n", t.key, printable(t.value), t.rev)
		}
	case "status":
		e, err := control.Get(ctx, t.key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			t.deleted = true
			fmt.Fprintf(out, "%s is not set: agents run the next key or their config\n", t.key)
		case err != nil:
			return fmt.Errorf("rollout: read %s: %w", t.key, err)
		default:
			t.rev, t.value = e.Revision(), string(e.Value())
			fmt.Fprintf(out, "%s = %s (revision %d)\n", t.key, printable(t.value), t.rev)
		}
	default:
		return fmt.Errorf("rollout: unknown action %q", opts.Action)
	}
	if opts.Wait == 0 && opts.Action != "status" {
		return nil
	}
	return watchRollout(ctx, status, t, opts, out)
}

// retry calls fn, with a timeout of 5s each, until it succeeds or
// giveUp passes; it returns fn's last error.
func retry(ctx context.Context, giveUp time.Time, fn func(context.Context) error) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := fn(cctx)
		cancel()
		if err == nil || ctx.Err() != nil || time.Now().After(giveUp) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// undo puts the value the key held before its current one, or deletes
// the key when it held none.
func undo(ctx context.Context, control jetstream.KeyValue, t *rolloutTarget) error {
	hist, err := control.History(ctx, t.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || len(hist) == 0 {
		return fmt.Errorf("rollout undo: %s was never set; nothing to undo", t.key)
	}
	if err != nil {
		return fmt.Errorf("rollout undo: read the history of %s: %w", t.key, err)
	}
	last := hist[len(hist)-1]
	if last.Operation() != jetstream.KeyValuePut {
		return fmt.Errorf("rollout undo: %s is deleted (its agents run their config); roll a version out instead", t.key)
	}
	var prev jetstream.KeyValueEntry
	if len(hist) > 1 {
		prev = hist[len(hist)-2]
	}
	if prev == nil || prev.Operation() != jetstream.KeyValuePut {
		if err := control.Delete(ctx, t.key, jetstream.LastRevision(last.Revision())); err != nil {
			return fmt.Errorf("rollout undo: delete %s: %w", t.key, err)
		}
		t.deleted = true
		return nil
	}
	rev, err := control.Update(ctx, t.key, prev.Value(), last.Revision())
	if err != nil {
		return fmt.Errorf("rollout undo: write %s: %w", t.key, err)
	}
	t.rev, t.value = rev, string(prev.Value())
	return nil
}

// rolloutTarget is what the agents should converge on.
type rolloutTarget struct {
	stage, group string
	key          string
	rev          uint64 // the revision written (or read)
	value        string
	deleted      bool // the key holds nothing: agents follow another key or their config
}

// Agent states in a rollout.
const (
	rowDone       = "done"       // runs the version
	rowPending    = "pending"    // has not seen the revision yet, or is loading it
	rowFailed     = "failed"     // refused the version (or rolled it back)
	rowOverridden = "overridden" // its group's key wins over the key written
	rowGone       = "gone"       // no status for too long
)

type rolloutRow struct {
	rec   agent.StatusRecord
	state string
}

// rolloutProgress rates every agent's status against t. The rollout has
// converged when at least one live agent counts, every one that counts is
// done, and they run one digest.
func rolloutProgress(t rolloutTarget, recs map[string]agent.StatusRecord, now time.Time) (rows []rolloutRow, counted, done int, converged bool) {
	digests := map[string]bool{}
	for _, rec := range recs {
		if t.group != "" && rec.Group != t.group {
			continue
		}
		r := rolloutRow{rec: rec}
		follows := rec.DesiredFrom == "kv:"+t.key
		switch {
		case now.Sub(rec.Updated) > agent.StatusStaleAfter:
			r.state = rowGone
		case t.group == "" && rec.Group != "" && rec.DesiredFrom == "kv:"+agent.ControlKey(rec.Group, t.stage):
			r.state = rowOverridden
		case t.deleted && follows, !t.deleted && (!follows || rec.DesiredRevision < t.rev):
			r.state = rowPending
		case rec.State == agent.StageServing:
			r.state = rowDone
		case rec.State == agent.StageFailed || rec.State == agent.StageRolledBack:
			r.state = rowFailed
		default:
			r.state = rowPending
		}
		switch r.state {
		case rowDone:
			digests[rec.Digest] = true
			done++
			counted++
		case rowPending, rowFailed:
			counted++
		}
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b rolloutRow) int { return cmp.Compare(a.rec.Agent, b.rec.Agent) })
	return rows, counted, done, counted > 0 && done == counted && len(digests) == 1
}

// watchRollout follows the status bucket until the agents converge on t
// or opts.Wait runs out. A watch that cannot be made or ends (a NATS node
// lost) is made again.
func watchRollout(ctx context.Context, status jetstream.KeyValue, t rolloutTarget, opts rolloutOptions, out io.Writer) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		w        jetstream.KeyWatcher
		updates  <-chan jetstream.KeyValueEntry
		recs     = map[string]agent.StatusRecord{}
		initial  = true
		watchErr error
	)
	defer func() {
		if w != nil {
			w.Stop()
		}
	}()
	rewatch := time.NewTimer(0)
	defer rewatch.Stop()
	var deadline <-chan time.Time
	if opts.Wait > 0 {
		timer := time.NewTimer(opts.Wait)
		defer timer.Stop()
		deadline = timer.C
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	r := &rolloutRenderer{out: out, live: opts.Live, target: t}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-rewatch.C:
			if w, watchErr = status.WatchFiltered(wctx, []string{t.stage + ".*"}); watchErr != nil {
				rewatch.Reset(500 * time.Millisecond)
				continue
			}
			updates, initial = w.Updates(), true
			clear(recs)
			continue
		case e, ok := <-updates:
			switch {
			case !ok:
				w.Stop()
				w, updates = nil, nil
				rewatch.Reset(500 * time.Millisecond)
				continue
			case e == nil:
				initial = false
			case e.Operation() != jetstream.KeyValuePut:
				delete(recs, e.Key())
			default:
				var rec agent.StatusRecord
				if err := json.Unmarshal(e.Value(), &rec); err == nil {
					recs[e.Key()] = rec
				}
			}
			if initial {
				continue
			}
		case <-tick.C:
			if initial {
				continue
			}
		case <-deadline:
			if initial && watchErr != nil {
				return fmt.Errorf("rollout of %s: cannot watch the status bucket: %w", t.key, watchErr)
			}
			rows, counted, done, _ := rolloutProgress(t, recs, time.Now())
			r.final(rows)
			return fmt.Errorf("rollout of %s did not converge within %s: %d of %d agents run it%s", t.key, opts.Wait, done, counted, failures(rows))
		}
		rows, counted, done, converged := rolloutProgress(t, recs, time.Now())
		r.render(rows, counted, done)
		if converged {
			r.final(rows)
			fmt.Fprintf(out, "rollout of %s complete: %d agents run %s\n", t.key, done, rows[slices.IndexFunc(rows, func(r rolloutRow) bool { return r.state == rowDone })].rec.Digest)
			return nil
		}
		if opts.Wait == 0 {
			r.final(rows)
			return fmt.Errorf("rollout of %s has not converged: %d of %d agents run it%s", t.key, done, counted, failures(rows))
		}
	}
}

// failures lists the agents that refused the version, for an error.
func failures(rows []rolloutRow) string {
	var b strings.Builder
	for _, r := range rows {
		if r.state == rowFailed {
			fmt.Fprintf(&b, "; %s: %s", printable(r.rec.Agent), printable(r.rec.Error))
		}
	}
	return b.String()
}

// rolloutRenderer shows the progress: a table redrawn in place on a
// terminal, else a line whenever an agent's state or the count changes.
type rolloutRenderer struct {
	out    io.Writer
	live   bool
	target rolloutTarget
	drawn  int               // lines of the live table on screen
	last   map[string]string // agent -> what was printed for it
	count  string
}

func (r *rolloutRenderer) render(rows []rolloutRow, counted, done int) {
	summary := fmt.Sprintf("Waiting for %s to converge: %d of %d agents run it", r.target.key, done, counted)
	if r.live {
		if r.drawn > 0 {
			fmt.Fprintf(r.out, "\033[%dA\033[J", r.drawn)
		}
		fmt.Fprintln(r.out, summary)
		r.drawn = 1 + r.table(rows)
		return
	}
	if summary != r.count {
		fmt.Fprintln(r.out, summary)
		r.count = summary
	}
	if r.last == nil {
		r.last = map[string]string{}
	}
	for _, row := range rows {
		line := fmt.Sprintf("  %s: %s %s", printable(row.rec.Agent), row.state, wasmstages.ShortDigest(row.rec.Digest))
		if row.rec.Error != "" && row.state == rowFailed {
			line += " (" + printable(row.rec.Result) + ": " + printable(row.rec.Error) + ")"
		}
		if r.last[row.rec.Agent] != line {
			fmt.Fprintln(r.out, line)
			r.last[row.rec.Agent] = line
		}
	}
}

// final prints the table once more when not live (live, it is on screen).
func (r *rolloutRenderer) final(rows []rolloutRow) {
	if !r.live {
		r.table(rows)
	}
}

// table prints the agents' rows and returns how many lines it printed.
func (r *rolloutRenderer) table(rows []rolloutRow) int {
	tw := tabwriter.NewWriter(r.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tGROUP\tSTATE\tDIGEST\tFROM\tSINCE\tERROR")
	now := time.Now()
	for _, row := range rows {
		rec := row.rec
		since := ""
		if !rec.Since.IsZero() {
			since = now.Sub(rec.Since).Round(time.Second).String()
		}
		errText := ""
		if rec.Error != "" {
			errText = rec.Result + ": " + rec.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(rec.Agent), printable(rec.Group), row.state, wasmstages.ShortDigest(rec.Digest),
			printable(rec.DesiredFrom), since, printable(clip(errText, 100)))
	}
	tw.Flush()
	return 1 + len(rows)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// printable escapes what agents wrote (names, errors) before it reaches a
// terminal: control characters would move the cursor or change colours.
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsPrint(r) {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, "\\u%04x", r)
		}
	}
	return b.String()
}
