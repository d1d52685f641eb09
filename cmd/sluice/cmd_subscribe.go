package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/sinks"
)

// subscribeOptions are the flags of `sluice subscribe`.
type subscribeOptions struct {
	client natsClientFlags
	count  int
	output string
	stream string
	since  sinceValue
	last   int
	all    bool
}

// replays tells whether the subscription reads a JetStream stream rather
// than live core NATS traffic.
func (o *subscribeOptions) replays() bool {
	return o.stream != "" || o.all || o.last > 0 || !o.since.t.IsZero()
}

func newSubscribeCommand() *cobra.Command {
	var o subscribeOptions
	cmd := &cobra.Command{
		Use:   "subscribe SUBJECT",
		Short: "Print the events published on NATS",
		Long: `Print the events published on a NATS subject (wildcards allowed) as JSON lines
or a table, one per event whatever the sink's encoding (msgpack or JSON) and
batching.

Without --stream, --since, --last or --all it prints what is published from
now on (core NATS keeps nothing). With one of them it reads the JetStream
stream that holds the subject (--stream names it; otherwise the server is
asked which stream holds SUBJECT), so that a consumer started late sees what
it missed: from a time (--since), the last N events (--last) or everything
the stream holds (--all), then the events that follow.

Authentication and TLS take the same credentials as the NATS sink: a creds
file, an NKey seed file, a user and password, or a token; a CA file and a
client certificate.`,
		Example: `  sluice subscribe 'sluice.events.>'                   # every event from now on
  sluice subscribe 'sluice.events.*.exec' -n 5 -o table   # five exec events, as a table
  sluice subscribe 'sluice.events.>' --since 10m          # the last ten minutes, then live
  sluice subscribe 'sluice.events.>' --stream SLUICE --last 100
  sluice subscribe 'sluice.events.>' --all -n 1000 > events.jsonl
  sluice subscribe 'sluice.>' -s tls://nats.example.com:4222 --creds reader.creds --tls-ca ca.pem`,
		Args:              exactArgs("SUBJECT"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := exclusiveFlags(cmd, "since", "last", "all"); err != nil {
				return err
			}
			if err := o.client.check(cmd); err != nil {
				return err
			}
			if o.count < 0 || o.last < 0 {
				return usageErrorf(cmd, "--count and --last take a positive number")
			}
			return subscribe(cmd.Context(), &o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	o.client.register(cmd)
	fs.IntVarP(&o.count, "count", "n", 0, "exit after this many events (0: until interrupted); a batched message counts as its events")
	enumVarP(cmd, fs, &o.output, "output", "o", "json", []string{"json", "table"}, "output format: JSON lines or a table")
	fs.StringVar(&o.stream, "stream", "", "read this JetStream stream (default: the stream that holds SUBJECT, when --since, --last or --all is given)")
	fs.Var(&o.since, "since", "replay the stream from this long ago (10m, 2h) or from an RFC 3339 time, then follow it")
	fs.IntVar(&o.last, "last", 0, "replay the last N events of the stream, then follow it")
	fs.BoolVar(&o.all, "all", false, "replay everything the stream holds, then follow it")
	for _, n := range []string{"count", "stream", "since", "last"} {
		cmd.RegisterFlagCompletionFunc(n, cobra.NoFileCompletions)
	}
	return cmd
}

// natsClientFlags connect a command to NATS the way the NATS sink
// connects: the same authentication methods and TLS settings, handled by
// the same code (sinks.NATSOptions.ClientOptions).
type natsClientFlags struct {
	server   string
	creds    string
	nkey     string
	user     string
	password string
	token    string
	tlsCA    string
	tlsCert  string
	tlsKey   string
	// dataDir is where the embedded server's read-only credentials are
	// looked for when no credentials are given (natsauth.go).
	dataDir string
}

func (f *natsClientFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVarP(&f.server, "server", "s", "", "NATS server `URL`, or a comma-separated list of a cluster's (default $NATS_URL, else nats://127.0.0.1:4222)")
	fs.StringVar(&f.creds, "creds", "", "a creds `file` (user JWT and NKey seed, as nsc writes it)")
	fs.StringVar(&f.nkey, "nkey", "", "a `file` holding an NKey seed (SU...)")
	fs.StringVar(&f.user, "user", "", "user `name` for user/password authentication")
	fs.StringVar(&f.password, "password", "", "password for --user (default $NATS_PASSWORD; flags show in ps)")
	fs.StringVar(&f.token, "token", "", "token authentication (default $NATS_TOKEN)")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "PEM CA certificates `file` that verifies the server (default: the system roots)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "client certificate `file` (PEM), for servers that verify clients")
	fs.StringVar(&f.tlsKey, "tls-key", "", "the client certificate's key `file` (PEM)")
	fs.StringVar(&f.dataDir, "data-dir", "", "the agent's data `directory`: without credentials, the embedded server's read-only ones are read from its nats-auth/reader.nk (default $SLUICE_DATA_DIR, else /var/lib/sluice)")
	cmd.MarkFlagFilename("creds", "creds")
	cmd.MarkFlagFilename("nkey")
	cmd.MarkFlagFilename("tls-ca", "pem", "crt")
	cmd.MarkFlagFilename("tls-cert", "pem", "crt")
	cmd.MarkFlagFilename("tls-key", "pem", "key")
	for _, n := range []string{"server", "user", "password", "token"} {
		cmd.RegisterFlagCompletionFunc(n, cobra.NoFileCompletions)
	}
}

// check refuses combinations the sink refuses too, as usage mistakes.
func (f *natsClientFlags) check(cmd *cobra.Command) error {
	if err := exclusiveFlags(cmd, "creds", "nkey", "user", "token"); err != nil {
		return err
	}
	if cmd.Flags().Changed("password") && !cmd.Flags().Changed("user") {
		return usageErrorf(cmd, "--password needs --user")
	}
	return flagsTogether(cmd, "tls-cert", "tls-key")
}

// sinkOptions are the sink options that stand for the flags.
func (f *natsClientFlags) sinkOptions() sinks.NATSOptions {
	o := sinks.NATSOptions{
		URL:          cmp.Or(f.server, os.Getenv("NATS_URL"), nats.DefaultURL),
		User:         f.user,
		Password:     f.password,
		Token:        f.token,
		NKeySeedFile: f.nkey,
		CredsFile:    f.creds,
		CAFile:       f.tlsCA,
		CertFile:     f.tlsCert,
		KeyFile:      f.tlsKey,
	}
	if o.User != "" && o.Password == "" {
		o.Password = os.Getenv("NATS_PASSWORD")
	}
	if o.Token == "" && o.User == "" && o.NKeySeedFile == "" && o.CredsFile == "" {
		o.Token = os.Getenv("NATS_TOKEN")
	}
	return o
}

// connect opens a connection named name; asyncErr receives the errors
// nats.go reports outside any call (a slow consumer dropping messages).
//
// Given no credentials, it uses the embedded server's read-only ones when
// this user can read them (the agent's user, root by default), so that
// `sluice subscribe` works against `make run` with no flags; a server that
// wants none is then connected to without.
func (f *natsClientFlags) connect(name string, asyncErr func(error)) (*nats.Conn, error) {
	so := f.sinkOptions()
	found := ""
	if so.User == "" && so.Token == "" && so.NKeySeedFile == "" && so.CredsFile == "" {
		found = readerCredentials(f.dataDir)
		so.NKeySeedFile = found
	}
	dial := func(so sinks.NATSOptions) (*nats.Conn, error) {
		opts, err := so.ClientOptions()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Name(name), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { asyncErr(err) }))
		return nats.Connect(so.URL, opts...)
	}
	nc, err := dial(so)
	if found != "" && errors.Is(err, nats.ErrNkeysNotSupported) {
		so.NKeySeedFile = ""
		nc, err = dial(so)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redactedURL(so.URL), explainAuthFailure(err, f, found))
	}
	return nc, nil
}

// redactedURL hides the password of a nats://user:password@host URL.
func redactedURL(u string) string {
	if at := strings.LastIndexByte(u, '@'); at >= 0 {
		if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
			return u[:scheme+3] + "***@" + u[at+1:]
		}
	}
	return u
}

// sinceValue is a point in time given as a duration ago or an RFC 3339 time.
type sinceValue struct{ t time.Time }

func (s *sinceValue) Type() string { return "duration|time" }
func (s *sinceValue) String() string {
	if s.t.IsZero() {
		return ""
	}
	return s.t.Format(time.RFC3339)
}
func (s *sinceValue) Set(v string) error {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		s.t = t
		return nil
	}
	d, err := parseDuration(v)
	if err != nil {
		return fmt.Errorf("%w, or an RFC 3339 time such as 2026-01-02T15:04:05Z", err)
	}
	if d < 0 {
		return fmt.Errorf("negative duration %q", v)
	}
	s.t = time.Now().Add(-d)
	return nil
}

func subscribe(ctx context.Context, o *subscribeOptions, subject string, stdout, stderr io.Writer) error {
	nc, err := o.client.connect("sluice subscribe", func(err error) {
		if errors.Is(err, nats.ErrSlowConsumer) {
			err = fmt.Errorf("%w: the server dropped messages this terminal could not take in time", err)
		}
		fmt.Fprintln(stderr, "sluice: subscribe:", err)
	})
	if err != nil {
		return err
	}
	defer nc.Close()
	p, err := newEventPrinter(stdout, o.output, o.count)
	if err != nil {
		return err
	}
	if o.replays() {
		return subscribeStream(ctx, nc, o, subject, p)
	}
	return subscribeCore(ctx, nc, subject, p)
}

// subscribeCore prints what is published on subject from now on.
func subscribeCore(ctx context.Context, nc *nats.Conn, subject string, p *eventPrinter) error {
	msgs := make(chan *nats.Msg, 4096)
	sub, err := nc.ChanSubscribe(subject, msgs)
	if err != nil {
		return fmt.Errorf("subscribe to %q: %w", subject, err)
	}
	defer sub.Unsubscribe()
	// The subscription is in place once the server has seen it.
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("subscribe to %q: %w", subject, err)
	}
	for !p.done() {
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			if err := p.printMessage(m.Subject, m.Header, m.Data); err != nil {
				return err
			}
		}
	}
	return nil
}
