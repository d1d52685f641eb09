package sinks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// FormatVersion is the event format version carried in every message's
// Sluice-Format header (docs/event-format.md).
const FormatVersion = "1"

// NATSOptions configure a NATS sink.
type NATSOptions struct {
	URL      string
	Subject  string // template, see SubjectTemplate
	Encoding string // "msgpack" (default) or "json"

	// Authentication; at most one of user/password, token, NKey seed and
	// creds file.
	User, Password string
	Token          string
	NKeySeedFile   string
	CredsFile      string
	// TLS: a CA to verify the server, and a client certificate.
	CAFile, CertFile, KeyFile string

	// JetStream, when set, publishes with acknowledgements.
	JetStream *JetStreamOptions

	// Host and BootID make the deduplication ids unique across agents and
	// reboots; BootID defaults to the kernel's boot id.
	Host, BootID string

	// ConnectTimeout bounds the first connection; 0 = 5s.
	ConnectTimeout time.Duration
	Logger         *slog.Logger
}

// JetStreamOptions configure at-least-once publishing.
type JetStreamOptions struct {
	Stream string
	// Create makes the stream when it does not exist.
	Create   bool
	Subjects []string // for Create; default: the subject template with fields as *
	MaxAge   time.Duration
	// MaxPending bounds the acknowledgements outstanding at once; 0 = 4096.
	MaxPending int
	// AckTimeout bounds the wait for one acknowledgement; 0 = 5s.
	AckTimeout time.Duration
	// Retries is how often a message whose publish failed is sent again
	// (with the same Nats-Msg-Id, so the stream keeps one copy); 0 retries
	// until the sink's context ends (shutdown), so an outage holds the
	// batch and backpressure reaches the sink's bounded queue, whose
	// policy then decides (and counts) what is dropped.
	Retries int
}

// NATS publishes events to NATS, either core NATS (at most once: what the
// client cannot send before a disconnect outlasts its reconnect buffer is
// lost) or JetStream (at least once: every message is acknowledged by the
// stream, retried with the same Nats-Msg-Id, and deduplicated there).
// It is safe for concurrent use.
type NATS struct {
	name    string
	opts    NATSOptions
	subject *SubjectTemplate
	json    bool
	idBase  string
	nc      *nats.Conn
	js      jetstream.JetStream
	log     *slog.Logger

	// header is shared by every core NATS message (nothing in it varies);
	// static holds the subject when the template has no fields.
	header nats.Header
	static string

	mu sync.Mutex // serialises Write, so messages leave in order
}

var _ pipeline.Sink = (*NATS)(nil)

// NewNATS connects to the server (and, for JetStream, checks or creates the
// stream). Credentials are never logged.
func NewNATS(ctx context.Context, name string, opts NATSOptions) (*NATS, error) {
	subject, err := ParseSubject(opts.Subject)
	if err != nil {
		return nil, fmt.Errorf("nats sink %q: %w", name, err)
	}
	s := &NATS{name: name, opts: opts, subject: subject, log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	switch opts.Encoding {
	case "", "msgpack":
	case "json":
		s.json = true
	default:
		return nil, fmt.Errorf("nats sink %q: unknown encoding %q (want msgpack or json)", name, opts.Encoding)
	}
	ctype := "application/msgpack"
	if s.json {
		ctype = "application/json"
	}
	s.header = nats.Header{"Sluice-Format": {FormatVersion}, "Content-Type": {ctype}}
	if subject.Static() {
		s.static = opts.Subject
	}
	boot := opts.BootID
	if boot == "" {
		boot = readBootID()
	}
	s.idBase = opts.Host + "." + boot + "."

	copts, err := s.connectOptions()
	if err != nil {
		return nil, fmt.Errorf("nats sink %q: %w", name, err)
	}
	s.nc, err = nats.Connect(opts.URL, copts...)
	if err != nil {
		return nil, fmt.Errorf("nats sink %q: connect to %s: %w", name, redactURL(opts.URL), err)
	}
	if js := opts.JetStream; js != nil {
		if err := s.setupJetStream(ctx); err != nil {
			s.nc.Close()
			return nil, fmt.Errorf("nats sink %q: %w", name, err)
		}
	}
	return s, nil
}

func (s *NATS) connectOptions() ([]nats.Option, error) {
	timeout := s.opts.ConnectTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	o := []nats.Option{
		nats.Name("sluice " + s.name),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			s.log.Warn("nats disconnected", "sink", s.name, "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			s.log.Info("nats reconnected", "sink", s.name, "server", nc.ConnectedUrlRedacted())
		}),
	}
	auths := 0
	if s.opts.User != "" {
		auths++
		o = append(o, nats.UserInfo(s.opts.User, s.opts.Password))
	}
	if s.opts.Token != "" {
		auths++
		o = append(o, nats.Token(s.opts.Token))
	}
	if s.opts.NKeySeedFile != "" {
		auths++
		opt, err := nats.NkeyOptionFromSeed(s.opts.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("read nkey seed file: %w", err)
		}
		o = append(o, opt)
	}
	if s.opts.CredsFile != "" {
		auths++
		if _, err := os.Stat(s.opts.CredsFile); err != nil {
			return nil, fmt.Errorf("read creds file: %w", err)
		}
		o = append(o, nats.UserCredentials(s.opts.CredsFile))
	}
	if auths > 1 {
		return nil, errors.New("set only one of user/password, token, nkey_seed_file and creds_file")
	}
	if s.opts.CAFile != "" || s.opts.CertFile != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.opts.CAFile != "" {
			pem, err := os.ReadFile(s.opts.CAFile)
			if err != nil {
				return nil, fmt.Errorf("read CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("CA file %s holds no PEM certificate", s.opts.CAFile)
			}
			cfg.RootCAs = pool
		}
		if s.opts.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(s.opts.CertFile, s.opts.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("load client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		o = append(o, nats.Secure(cfg))
	}
	return o, nil
}

func (s *NATS) setupJetStream(ctx context.Context) error {
	jso := s.opts.JetStream
	pending := jso.MaxPending
	if pending <= 0 {
		pending = 4096
	}
	js, err := jetstream.New(s.nc, jetstream.WithPublishAsyncMaxPending(pending))
	if err != nil {
		return fmt.Errorf("open jetstream: %w", err)
	}
	s.js = js
	if jso.Stream == "" {
		return nil
	}
	_, err = js.Stream(ctx, jso.Stream)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("look up stream %q: %w", jso.Stream, err)
	}
	if !jso.Create {
		return fmt.Errorf("stream %q does not exist (set jetstream { create = true } to create it)", jso.Stream)
	}
	subjects := jso.Subjects
	if len(subjects) == 0 {
		subjects = []string{s.subject.wildcard()}
	}
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       jso.Stream,
		Subjects:   subjects,
		MaxAge:     jso.MaxAge,
		Duplicates: 2 * time.Minute,
		Storage:    jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("create stream %q: %w", jso.Stream, err)
	}
	s.log.Info("created jetstream stream", "sink", s.name, "stream", jso.Stream, "subjects", subjects)
	return nil
}

// wildcard is the template with every field replaced by *, the subjects a
// created stream listens on.
func (t *SubjectTemplate) wildcard() string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.field != "" {
			b.WriteByte('*')
		} else {
			b.WriteString(p.literal)
		}
	}
	return b.String()
}

// Name returns the sink's config name.
func (s *NATS) Name() string { return s.name }

// MsgID is the deduplication id of an event: stable across retries and
// agent restarts (it depends only on host, boot, source and sequence).
func (s *NATS) MsgID(ev *pipeline.Event) string {
	if ev.Kind == pipeline.KindLoss {
		// Loss records carry no sequence of their own; their content
		// (source, reason, range, time) makes them unique.
		return ""
	}
	return s.idBase + ev.Source + "." + strconv.FormatUint(ev.Seq, 10)
}

// fill sets m's subject and payload for ev; m.Header is left to the caller.
func (s *NATS) fill(m *nats.Msg, ev *pipeline.Event, subj []byte) ([]byte, error) {
	if s.static != "" {
		m.Subject = s.static
	} else {
		subj = s.subject.Append(subj[:0], ev)
		m.Subject = string(subj)
	}
	m.Data = ev.Data
	if s.json {
		var err error
		if m.Data, err = codec.AppendJSON(nil, ev.Data); err != nil {
			return subj, fmt.Errorf("encode event seq %d of %q as JSON: %w", ev.Seq, ev.Source, err)
		}
	}
	return subj, nil
}

// Write publishes a batch. With JetStream it returns once every message is
// acknowledged, retrying failures with backoff; the error reports what
// could not be delivered.
func (s *NATS) Write(ctx context.Context, batch []pipeline.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.js == nil {
		return s.writeCore(batch)
	}
	return s.writeJetStream(ctx, batch)
}

func (s *NATS) writeCore(batch []pipeline.Event) error {
	var errs []error
	// The client copies a message into its buffer, so one Msg serves the
	// whole batch.
	m := nats.Msg{Header: s.header}
	var subj []byte
	for i := range batch {
		var err error
		subj, err = s.fill(&m, &batch[i], subj)
		if err == nil {
			err = s.nc.PublishMsg(&m)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("nats sink %q: %d of %d events not published: %w", s.name, len(errs), len(batch), errs[0])
	}
	return nil
}

func (s *NATS) writeJetStream(ctx context.Context, batch []pipeline.Event) error {
	jso := s.opts.JetStream
	retries := jso.Retries
	ackTimeout := jso.AckTimeout
	if ackTimeout <= 0 {
		ackTimeout = 5 * time.Second
	}
	// Async publishes keep their messages until acknowledged, so each
	// gets its own Msg and header (the dedup id varies).
	msgs := make([]*nats.Msg, 0, len(batch))
	var encodeErrs []error
	var subj []byte
	for i := range batch {
		ev := &batch[i]
		m := &nats.Msg{Header: nats.Header{"Sluice-Format": s.header["Sluice-Format"], "Content-Type": s.header["Content-Type"]}}
		var err error
		if subj, err = s.fill(m, ev, subj); err != nil {
			encodeErrs = append(encodeErrs, err)
			continue
		}
		if id := s.MsgID(ev); id != "" {
			m.Header[jetstream.MsgIDHeader] = []string{id}
		}
		msgs = append(msgs, m)
	}
	backoff := 100 * time.Millisecond
	for attempt := 0; len(msgs) > 0; attempt++ {
		futures := make([]jetstream.PubAckFuture, len(msgs))
		var failed []*nats.Msg
		var lastErr error
		for i, m := range msgs {
			f, err := s.js.PublishMsgAsync(m)
			if err != nil {
				failed = append(failed, m)
				lastErr = err
				continue
			}
			futures[i] = f
		}
		timer := time.NewTimer(ackTimeout)
		for i, f := range futures {
			if f == nil {
				continue
			}
			select {
			case <-f.Ok():
			case err := <-f.Err():
				failed = append(failed, msgs[i])
				lastErr = err
			case <-timer.C:
				failed = append(failed, msgs[i])
				lastErr = errors.New("timed out waiting for the stream's acknowledgement")
				timer.Reset(time.Millisecond) // the rest get no extra wait
			case <-ctx.Done():
				timer.Stop()
				return fmt.Errorf("nats sink %q: %d events unacknowledged: %w", s.name, len(msgs)-i, ctx.Err())
			}
		}
		timer.Stop()
		if len(failed) == 0 {
			break
		}
		if retries > 0 && attempt >= retries {
			return fmt.Errorf("nats sink %q: %d events not acknowledged after %d retries: %w", s.name, len(failed), retries, lastErr)
		}
		s.log.Warn("jetstream publish failed; retrying", "sink", s.name, "events", len(failed), "attempt", attempt+1, "error", lastErr)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return fmt.Errorf("nats sink %q: %d events unacknowledged: %w", s.name, len(failed), ctx.Err())
		}
		backoff = min(backoff*2, 5*time.Second)
		msgs = failed
	}
	if len(encodeErrs) > 0 {
		return fmt.Errorf("nats sink %q: %w", s.name, errors.Join(encodeErrs...))
	}
	return nil
}

// Close flushes what the client buffered (core NATS) and closes the
// connection; ctx bounds the flush.
func (s *NATS) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.nc.IsConnected() {
		if _, ok := ctx.Deadline(); ok {
			err = s.nc.FlushWithContext(ctx)
		} else {
			err = s.nc.FlushTimeout(5 * time.Second)
		}
	}
	s.nc.Close()
	if err != nil {
		return fmt.Errorf("nats sink %q: flush: %w", s.name, err)
	}
	return nil
}

func readBootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "noboot"
	}
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "-", "")
}

// redactURL removes credentials from a server URL for messages.
func redactURL(u string) string {
	if at := strings.LastIndexByte(u, '@'); at >= 0 {
		if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
			return u[:scheme+3] + "***@" + u[at+1:]
		}
	}
	return u
}
