package sinks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
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

	// BatchMaxEvents > 1 packs up to that many consecutive events with the
	// same subject into one message (a msgpack array, or JSON lines), with
	// one dedup id per message; BatchMaxBytes bounds a message's payload
	// (0 = 512 KiB). One event per message is the default.
	BatchMaxEvents int
	BatchMaxBytes  int

	// SpoolDir, when set, holds the on-disk spool that absorbs outages.
	SpoolDir string
	// SpoolMaxBytes bounds the spool; 0 = 1 GiB. Past it, SpoolDropOldest
	// deletes the oldest spooled events, otherwise new ones are refused;
	// either way they are counted as dropped (reason spool_full).
	SpoolMaxBytes   int64
	SpoolDropOldest bool
	// Metrics receives the spool counters; nil keeps them private.
	Metrics *pipeline.Registry

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

	spool       *Spool
	streamReady bool // guarded by mu once the sink runs
	reconnected chan struct{}
	stopReplay  context.CancelFunc
	replayDone  sync.WaitGroup
	// Counters: events written to the spool, replayed from it, refused by
	// a full spool, and spool segments deleted to make room.
	spooled, replayed, spoolDrop, dropSegs *pipeline.Counter

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

	reg := opts.Metrics
	if reg == nil {
		reg = pipeline.NewRegistry()
	}
	s.spooled = reg.Counter("sluice_sink_spooled_total", "Events a sink wrote to its on-disk spool.", "sink", name)
	s.replayed = reg.Counter("sluice_sink_replayed_total", "Spooled events a sink delivered after reconnecting.", "sink", name)
	s.spoolDrop = reg.Component("sink", name).Dropped("spool_full")
	s.dropSegs = reg.Counter("sluice_sink_spool_segments_dropped_total", "Oldest spool segments deleted to make room.", "sink", name)
	s.reconnected = make(chan struct{}, 1)
	if opts.SpoolDir != "" {
		max := opts.SpoolMaxBytes
		if max <= 0 {
			max = 1 << 30
		}
		if s.spool, err = OpenSpool(opts.SpoolDir, max, opts.SpoolDropOldest); err != nil {
			return nil, fmt.Errorf("nats sink %q: %w", name, err)
		}
	}
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
	if s.spool != nil {
		rctx, cancel := context.WithCancel(context.Background())
		s.stopReplay = cancel
		s.replayDone.Add(1)
		go func() {
			defer s.replayDone.Done()
			s.replay(rctx)
		}()
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
		// With a spool, an agent can start during an outage: events spool
		// until the server is reachable.
		nats.RetryOnFailedConnect(s.spool != nil),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			s.log.Warn("nats disconnected", "sink", s.name, "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			s.log.Info("nats reconnected", "sink", s.name, "server", nc.ConnectedUrlRedacted())
			select {
			case s.reconnected <- struct{}{}:
			default:
			}
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
		s.streamReady = true
		return nil
	}
	if s.spool != nil && !s.nc.IsConnected() {
		// Started during an outage: events spool, and the replayer
		// checks the stream once the server is reachable.
		return nil
	}
	return s.ensureStream(ctx)
}

// ensureStream checks the stream exists, creating it when configured to.
func (s *NATS) ensureStream(ctx context.Context) error {
	jso := s.opts.JetStream
	js := s.js
	_, err := js.Stream(ctx, jso.Stream)
	if err == nil {
		s.streamReady = true
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
	s.streamReady = true
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
// acknowledged, retrying failures with backoff. With a spool, messages the
// server cannot take (disconnected, or unacknowledged after the retries)
// are written to disk and replayed in order after reconnecting; Write then
// reports success, since the events are safe.
func (s *NATS) Write(ctx context.Context, batch []pipeline.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spool != nil && (s.spool.Len() > 0 || !s.nc.IsConnected()) {
		// Behind a non-empty spool, new events queue too, to keep order.
		msgs, encErr := s.messages(batch)
		return errors.Join(encErr, s.spoolMsgs(msgs))
	}
	if s.js == nil && s.opts.BatchMaxEvents <= 1 {
		return s.writeCore(batch)
	}
	msgs, encErr := s.messages(batch)
	if s.js == nil {
		for i, m := range msgs {
			if err := s.nc.PublishMsg(m); err != nil {
				if s.spool != nil {
					return errors.Join(encErr, s.spoolMsgs(msgs[i:]))
				}
				return errors.Join(encErr, fmt.Errorf("nats sink %q: %d messages not published: %w", s.name, len(msgs)-i, err))
			}
		}
		return encErr
	}
	retries := s.opts.JetStream.Retries
	if s.spool != nil && retries == 0 {
		retries = 2 // then spool, rather than hold the pipeline
	}
	failed, err := s.publishJetStream(ctx, msgs, retries)
	if len(failed) == 0 {
		return encErr
	}
	if s.spool != nil {
		return errors.Join(encErr, s.spoolMsgs(failed))
	}
	return errors.Join(encErr, fmt.Errorf("nats sink %q: %d events not acknowledged: %w", s.name, len(failed), err))
}

// messages builds one message per event, each with its own header (async
// publishes keep messages until acknowledged, and the dedup id varies).
func (s *NATS) messages(batch []pipeline.Event) ([]*nats.Msg, error) {
	if s.opts.BatchMaxEvents > 1 {
		return s.batchedMessages(batch)
	}
	msgs := make([]*nats.Msg, 0, len(batch))
	var errs []error
	var subj []byte
	for i := range batch {
		ev := &batch[i]
		m := &nats.Msg{Header: nats.Header{"Sluice-Format": s.header["Sluice-Format"], "Content-Type": s.header["Content-Type"]}}
		var err error
		if subj, err = s.fill(m, ev, subj); err != nil {
			errs = append(errs, err)
			continue
		}
		if id := s.MsgID(ev); id != "" && s.js != nil {
			m.Header[jetstream.MsgIDHeader] = []string{id}
		}
		msgs = append(msgs, m)
	}
	if len(errs) > 0 {
		return msgs, fmt.Errorf("nats sink %q: %w", s.name, errors.Join(errs...))
	}
	return msgs, nil
}

// Content types of batched messages.
const (
	contentMsgpackArray = "application/vnd.sluice.msgpack-array"
	contentJSONLines    = "application/x-ndjson"
)

// batchedMessages packs consecutive events with the same subject into
// messages. A message's dedup id names its first and last event, so a
// retry or a replay of the same message is deduplicated by the stream.
func (s *NATS) batchedMessages(batch []pipeline.Event) ([]*nats.Msg, error) {
	maxBytes := s.opts.BatchMaxBytes
	if maxBytes <= 0 {
		maxBytes = 512 << 10
	}
	ctype := contentMsgpackArray
	if s.json {
		ctype = contentJSONLines
	}
	var msgs []*nats.Msg
	var errs []error
	var subj, next []byte
	for i := 0; i < len(batch); {
		subj = s.subject.Append(subj[:0], &batch[i])
		j, size := i, 0
		for j < len(batch) && j-i < s.opts.BatchMaxEvents && (j == i || size+len(batch[j].Data) <= maxBytes) {
			if j > i && !s.subject.Static() {
				next = s.subject.Append(next[:0], &batch[j])
				if string(next) != string(subj) {
					break
				}
			}
			size += len(batch[j].Data)
			j++
		}
		var data []byte
		if s.json {
			data = make([]byte, 0, 2*size)
			for k := i; k < j; k++ {
				line, err := codec.AppendJSON(data, batch[k].Data)
				if err != nil {
					errs = append(errs, fmt.Errorf("encode event seq %d of %q as JSON: %w", batch[k].Seq, batch[k].Source, err))
					continue
				}
				data = append(line, '\n')
			}
		} else {
			data = codec.AppendArrayHeader(make([]byte, 0, size+5), j-i)
			for k := i; k < j; k++ {
				data = append(data, batch[k].Data...)
			}
		}
		m := &nats.Msg{Subject: string(subj), Data: data, Header: nats.Header{"Sluice-Format": {FormatVersion}, "Content-Type": {ctype}}}
		if s.js != nil {
			first, last := &batch[i], &batch[j-1]
			m.Header[jetstream.MsgIDHeader] = []string{s.idBase + first.Source + "." + strconv.FormatUint(first.Seq, 10) + "-" + last.Source + "." + strconv.FormatUint(last.Seq, 10)}
		}
		msgs = append(msgs, m)
		i = j
	}
	if len(errs) > 0 {
		return msgs, fmt.Errorf("nats sink %q: %w", s.name, errors.Join(errs...))
	}
	return msgs, nil
}

func (s *NATS) writeCore(batch []pipeline.Event) error {
	// The client copies a message into its buffer, so one Msg serves the
	// whole batch.
	m := nats.Msg{Header: s.header}
	var subj []byte
	var encErrs []error
	for i := range batch {
		var err error
		subj, err = s.fill(&m, &batch[i], subj)
		if err != nil {
			encErrs = append(encErrs, err)
			continue
		}
		if err := s.nc.PublishMsg(&m); err != nil {
			if s.spool != nil {
				rest, encErr := s.messages(batch[i:])
				return errors.Join(errors.Join(encErrs...), encErr, s.spoolMsgs(rest))
			}
			return fmt.Errorf("nats sink %q: %d of %d events not published: %w", s.name, len(batch)-i, len(batch), err)
		}
	}
	if len(encErrs) > 0 {
		return fmt.Errorf("nats sink %q: %w", s.name, errors.Join(encErrs...))
	}
	return nil
}

// publishJetStream publishes msgs asynchronously and waits for their
// acknowledgements, retrying failures (same dedup ids) with backoff.
// retries = 0 retries until ctx ends. It returns the messages not
// acknowledged.
func (s *NATS) publishJetStream(ctx context.Context, msgs []*nats.Msg, retries int) ([]*nats.Msg, error) {
	ackTimeout := s.opts.JetStream.AckTimeout
	if ackTimeout <= 0 {
		ackTimeout = 5 * time.Second
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
				for _, rest := range futures[i:] {
					if rest != nil {
						failed = append(failed, rest.Msg())
					}
				}
				return failed, ctx.Err()
			}
		}
		timer.Stop()
		if len(failed) == 0 {
			return nil, nil
		}
		if retries > 0 && attempt >= retries {
			return failed, lastErr
		}
		s.log.Warn("jetstream publish failed; retrying", "sink", s.name, "events", len(failed), "attempt", attempt+1, "error", lastErr)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return failed, ctx.Err()
		}
		backoff = min(backoff*2, 5*time.Second)
		msgs = failed
	}
	return nil, nil
}

// Spool records: u8 content type (0 msgpack, 1 JSON, 2 msgpack array,
// 3 JSON lines), u16 subject length,
// subject, u16 dedup id length, id, payload.
func encodeSpooled(m *nats.Msg) []byte {
	id := m.Header.Get(jetstream.MsgIDHeader)
	b := make([]byte, 0, 5+len(m.Subject)+len(id)+len(m.Data))
	var flags byte
	switch m.Header.Get("Content-Type") {
	case "application/json":
		flags = 1
	case contentMsgpackArray:
		flags = 2
	case contentJSONLines:
		flags = 3
	}
	b = append(b, flags)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(m.Subject)))
	b = append(b, m.Subject...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(id)))
	b = append(b, id...)
	return append(b, m.Data...)
}

func decodeSpooled(b []byte) (*nats.Msg, error) {
	bad := errors.New("corrupt spool record")
	if len(b) < 5 {
		return nil, bad
	}
	flags := b[0]
	n := int(binary.LittleEndian.Uint16(b[1:]))
	b = b[3:]
	if len(b) < n+2 {
		return nil, bad
	}
	subj := string(b[:n])
	b = b[n:]
	n = int(binary.LittleEndian.Uint16(b))
	b = b[2:]
	if len(b) < n {
		return nil, bad
	}
	id := string(b[:n])
	ctype := [...]string{"application/msgpack", "application/json", contentMsgpackArray, contentJSONLines}[flags&3]
	m := &nats.Msg{Subject: subj, Data: b[n:], Header: nats.Header{"Sluice-Format": {FormatVersion}, "Content-Type": {ctype}}}
	if id != "" {
		m.Header[jetstream.MsgIDHeader] = []string{id}
	}
	return m, nil
}

// spoolMsgs writes messages to the spool; what it cannot store is counted
// as dropped (reason spool_full) and reported.
func (s *NATS) spoolMsgs(msgs []*nats.Msg) error {
	if len(msgs) == 0 {
		return nil
	}
	recs := make([][]byte, len(msgs))
	for i, m := range msgs {
		recs[i] = encodeSpooled(m)
	}
	stored, droppedSegs, err := s.spool.Append(recs)
	s.spooled.Add(uint64(stored))
	if droppedSegs > 0 {
		s.dropSegs.Add(uint64(droppedSegs))
		s.log.Warn("spool full: dropped its oldest segments", "sink", s.name, "segments", droppedSegs)
	}
	if lost := len(msgs) - stored; lost > 0 {
		s.spoolDrop.Add(uint64(lost))
		return fmt.Errorf("nats sink %q: %d events dropped: %w", s.name, lost, err)
	}
	return nil
}

// replay runs until ctx ends, sending spooled messages in order whenever
// the connection is up. It owns nothing but its loop; Close stops it.
func (s *NATS) replay(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.reconnected:
		}
		for ctx.Err() == nil && s.nc.IsConnected() && s.spool.Len() > 0 {
			if !s.replayOldest(ctx) {
				break
			}
		}
	}
}

// replayOldest sends the oldest spool segment; it reports whether the
// segment was delivered (and deleted).
func (s *NATS) replayOldest(ctx context.Context) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.js != nil && !s.streamReady {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.ensureStream(sctx)
		cancel()
		if err != nil {
			s.log.Warn("jetstream stream not ready; spool kept", "sink", s.name, "error", err)
			return false
		}
	}
	id, recs, ok, err := s.spool.Oldest()
	if err != nil {
		s.log.Error("read spool", "sink", s.name, "error", err)
		return false
	}
	if !ok {
		return false
	}
	msgs := make([]*nats.Msg, 0, len(recs))
	for _, r := range recs {
		m, err := decodeSpooled(r)
		if err != nil {
			s.log.Error("skip spool record", "sink", s.name, "error", err)
			s.spoolDrop.Inc()
			continue
		}
		msgs = append(msgs, m)
	}
	if s.js != nil {
		if failed, err := s.publishJetStream(ctx, msgs, 2); len(failed) > 0 {
			s.log.Warn("spool replay incomplete; will retry", "sink", s.name, "events", len(failed), "error", err)
			return false
		}
	} else {
		for _, m := range msgs {
			if err := s.nc.PublishMsg(m); err != nil {
				return false
			}
		}
		if err := s.nc.FlushTimeout(5 * time.Second); err != nil {
			return false
		}
	}
	if err := s.spool.Consumed(id); err != nil {
		s.log.Error("delete replayed spool segment", "sink", s.name, "error", err)
		return false
	}
	s.replayed.Add(uint64(len(msgs)))
	return true
}

// Close stops the replayer, flushes what the client buffered (core NATS)
// and closes the connection; ctx bounds the flush. Spooled events stay on
// disk for the next start.
func (s *NATS) Close(ctx context.Context) error {
	if s.stopReplay != nil {
		s.stopReplay()
		s.replayDone.Wait()
	}
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
	if s.spool != nil {
		err = errors.Join(err, s.spool.Close())
	}
	if err != nil {
		return fmt.Errorf("nats sink %q: close: %w", s.name, err)
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
