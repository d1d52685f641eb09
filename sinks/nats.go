package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/pipeline"
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

	// Host, BootID and RunID make the deduplication ids unique across
	// agents, reboots and agent restarts; BootID defaults to the kernel's
	// boot id, RunID to the time the sink was created.
	Host, BootID, RunID string

	// BatchMaxEvents > 1 packs up to that many consecutive events with the
	// same subject into one message (a msgpack array, or JSON lines), with
	// one dedup id per message; BatchMaxBytes bounds a message's payload
	// (0 = DefaultBatchMaxBytes). BatchMaxDelay is the longest an event
	// waits in the sink's queue for its batch to fill (0 = the pipeline's
	// batch delay). One event per message is the default.
	BatchMaxEvents int
	BatchMaxBytes  int
	BatchMaxDelay  time.Duration

	// SpoolDir, when set, holds the on-disk spool that absorbs outages.
	SpoolDir string
	// SpoolMaxBytes bounds the spool; 0 = 1 GiB. Past it, SpoolDropOldest
	// deletes the oldest spooled events (counted in
	// sluice_sink_spool_lost_total{reason="drop_oldest"}); otherwise new
	// events are refused and counted as dropped (reason spool_full).
	SpoolMaxBytes   int64
	SpoolDropOldest bool
	// Metrics receives the sink's counters; nil keeps them private.
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
	// DuplicateWindow is the deduplication window of a created stream;
	// 0 = DefaultDuplicateWindow.
	DuplicateWindow time.Duration
	// Retries is how often a message whose publish failed is sent again
	// (with the same Nats-Msg-Id, so the stream keeps one copy) before it
	// is spooled, or, without a spool, dropped (reason sink_error). 0
	// means: with a spool, spool at the first failure (the replayer
	// retries, in order); without one, retry until the sink's context ends
	// (shutdown), so an outage holds the batch and backpressure reaches the
	// sink's bounded queue, whose policy then decides (and counts) what is
	// dropped.
	Retries int
}

// Drop reasons of the NATS sink, besides the pipeline's.
const (
	ReasonSpoolFull = "spool_full" // the spool was at its limit (drop_newest)
	ReasonTooLarge  = "too_large"  // a message larger than the server's max_payload
)

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
	streamReady atomic.Bool
	// streamSubjects are the subjects the stream listens on, as last
	// looked up: a message on none of them is refused, not retried.
	streamSubjects atomic.Pointer[[]string]
	streamMaxMsg   atomic.Int32 // the stream's max_msg_size; <= 0: none
	reconnected    chan struct{}
	stopReplay     context.CancelFunc
	replayDone     chan struct{} // closed when the replayer has returned
	state          connState
	noticer        spoolNoticer
	dialer         *abortableDialer
	closing        atomic.Bool // Close has begun: a closed connection is ours
	// pubMu serialises JetStream publishing (Write and the replayer);
	// it guards jsSend. acks is created by the first publish.
	pubMu  sync.Mutex
	jsSend msgSender
	acks   atomic.Pointer[jsAcks]
	// Counters: events written to the spool, replayed from it, and lost
	// from it after they were accepted (deleted to make room, corrupt,
	// refused by the server).
	spooled, replayed, spoolDropOld, spoolCorrupt, spoolTooLarge, spoolRejected *pipeline.Counter
	spoolCorruptBytes, lossRecordsLost                                          *pipeline.Counter
	spoolBytes                                                                  *pipeline.Gauge

	// static holds the subject when the template has no fields.
	static string

	mu     sync.Mutex // serialises Write, so messages leave in order; guards what follows
	closed bool
	// coreHeader is shared by every core NATS message (nothing in it
	// varies); coreMsg and jsonBuf are reused by every core publish (the
	// client copies a message into its buffer).
	coreHeader nats.Header
	coreMsg    nats.Msg
	coreSend   msgSender // batched core NATS messages
	jsonBuf    []byte
	subjBuf    []byte
	// arena holds the payloads of batched messages; arenaUsed is the one
	// the messages of the current Write use (batchedMessages).
	arena, arenaUsed []byte
	subjects         map[string]string
}

var (
	_ pipeline.Sink         = (*NATS)(nil)
	_ pipeline.BatchingSink = (*NATS)(nil)
)

// NewNATS connects to the server (and, for JetStream, checks or creates the
// stream). Credentials are never logged nor put in errors.
func NewNATS(ctx context.Context, name string, opts NATSOptions) (*NATS, error) {
	subject, err := ParseSubject(opts.Subject)
	if err != nil {
		return nil, fmt.Errorf("nats sink %q: %w", name, err)
	}
	s := &NATS{name: name, opts: opts, subject: subject, log: opts.Logger, subjects: map[string]string{}}
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
	ctype := contentMsgpack
	if s.json {
		ctype = contentJSON
	}
	s.coreHeader = nats.Header{headerFormat: formatValue, headerContentType: contentValues[ctype]}
	if subject.Static() {
		s.static = opts.Subject
	}
	boot := opts.BootID
	if boot == "" {
		boot = readBootID()
	}
	run := opts.RunID
	if run == "" {
		run = strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	s.idBase = opts.Host + "." + boot + "." + run + "."

	reg := opts.Metrics
	if reg == nil {
		reg = pipeline.NewRegistry()
	}
	m := reg.Component("sink", name)
	s.spooled = m.Counter("sluice_sink_spooled_total", "Events a sink wrote to its on-disk spool.")
	s.replayed = m.Counter("sluice_sink_replayed_total", "Spooled events a sink delivered after reconnecting.")
	lostHelp := "Spooled events lost after the spool accepted them, by reason."
	s.spoolDropOld = m.Counter("sluice_sink_spool_lost_total", lostHelp, "reason", "drop_oldest")
	s.spoolCorrupt = m.Counter("sluice_sink_spool_lost_total", lostHelp, "reason", "corrupt")
	s.spoolTooLarge = m.Counter("sluice_sink_spool_lost_total", lostHelp, "reason", ReasonTooLarge)
	s.spoolRejected = m.Counter("sluice_sink_spool_lost_total", lostHelp, "reason", ReasonRejected)
	s.spoolCorruptBytes = m.Counter("sluice_sink_spool_corrupt_bytes_total", "Bytes of damaged records a sink's spool reader skipped.")
	s.lossRecordsLost = m.Counter("sluice_sink_loss_records_lost_total", "Loss records a sink made for events lost from its spool and could not queue.")
	s.spoolBytes = m.Gauge("sluice_sink_spool_bytes", "Bytes a sink's spool holds.")
	s.state = connState{name: name, url: redactURL(opts.URL), log: s.log,
		gauge:  m.Gauge("sluice_sink_connected", "Whether a sink is connected to its server (1) or not (0)."),
		errors: m.Errors}
	s.noticer = spoolNoticer{name: name, log: s.log}
	s.reconnected = make(chan struct{}, 1)
	if opts.SpoolDir != "" {
		max := opts.SpoolMaxBytes
		if max <= 0 {
			max = DefaultSpoolMaxBytes
		}
		s.spool, err = OpenSpool(opts.SpoolDir, SpoolOptions{MaxBytes: max, DropOldest: opts.SpoolDropOldest, Count: spooledEvents})
		if err != nil {
			return nil, fmt.Errorf("nats sink %q: %w", name, err)
		}
		s.spoolBytes.Set(s.spool.Len())
	}
	fail := func(err error) (*NATS, error) {
		if s.nc != nil {
			s.nc.Close()
		}
		if s.spool != nil {
			s.spool.Close() // releases the directory's lock
		}
		return nil, fmt.Errorf("nats sink %q: %w", name, err)
	}
	copts, err := s.connectOptions()
	if err != nil {
		return fail(err)
	}
	s.nc, err = nats.Connect(opts.URL, copts...)
	if err != nil {
		s.state.gone(err, true)
		return fail(fmt.Errorf("connect to %s: %w", redactURL(opts.URL), err))
	}
	if !s.nc.IsConnected() {
		// Started during an outage (with a spool): events spool until
		// the server is reachable.
		s.state.unreachable(s.dialer.why(nil))
	}
	if js := opts.JetStream; js != nil {
		if err := s.setupJetStream(ctx); err != nil {
			return fail(err)
		}
	}
	if s.spool != nil {
		s.noticer.sized(s.spool.Len(), errors.New("events left by the previous run"))
		rctx, cancel := context.WithCancel(context.Background())
		s.stopReplay, s.replayDone = cancel, make(chan struct{})
		go func() {
			defer close(s.replayDone)
			s.replay(rctx)
		}()
	}
	return s, nil
}

// WriteBatch tells the pipeline how many events to hand to one Write: with
// batching, enough for several messages, collected for at most
// BatchMaxDelay; with JetStream, up to the window of outstanding acks, so
// that the wait for the last acknowledgement of a Write is amortised over
// many messages.
func (s *NATS) WriteBatch() (int, time.Duration) { return s.opts.WriteBatch() }

// WriteBatch is NATS.WriteBatch for a sink not built yet.
func (o NATSOptions) WriteBatch() (int, time.Duration) {
	pending := 0
	if o.JetStream != nil {
		pending = o.JetStream.MaxPending
		if pending <= 0 {
			pending = DefaultMaxPending
		}
	}
	if o.BatchMaxEvents > 1 {
		msgs := 16
		if pending > 0 {
			msgs = min(msgs, pending)
		}
		return o.BatchMaxEvents * msgs, o.BatchMaxDelay
	}
	if pending > 0 {
		return min(pending, maxJetStreamWrite), 0
	}
	return 0, 0
}

// DefaultMaxPending is JetStreamOptions.MaxPending when 0.
const DefaultMaxPending = 4096

// DefaultSpoolMaxBytes bounds a spool when NATSOptions.SpoolMaxBytes is 0.
const DefaultSpoolMaxBytes = 1 << 30

// maxJetStreamWrite bounds the events of one JetStream Write: the memory
// the messages of one Write hold until acknowledged.
const maxJetStreamWrite = 2048

func (s *NATS) connectOptions() ([]nats.Option, error) {
	timeout := s.opts.ConnectTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	s.dialer = &abortableDialer{d: net.Dialer{Timeout: timeout}}
	o := []nats.Option{
		nats.Name("sluice " + s.name),
		nats.Timeout(timeout),
		nats.SetCustomDialer(s.dialer),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// A server that stops reading (hung, or a network that drops
		// packets silently) is noticed within seconds, not minutes: a
		// write that does not complete in 5 s, or two pings unanswered
		// 10 s apart, count as a disconnection (and the spool takes over).
		nats.FlusherTimeout(5 * time.Second),
		nats.PingInterval(10 * time.Second),
		nats.MaxPingsOutstanding(2),
		// With a spool, an agent can start during an outage: events spool
		// until the server is reachable.
		nats.RetryOnFailedConnect(s.spool != nil),
	}
	o = append(o, s.stateOptions()...)
	auth, err := s.opts.ClientOptions()
	if err != nil {
		return nil, err
	}
	o = append(o, auth...)
	return o, nil
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
