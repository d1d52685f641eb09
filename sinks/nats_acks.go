package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jsAcks collects the stream's acknowledgements of the messages one
// publishing round sends (publishJetStream), in place of nats.go's
// PublishMsgAsync. That one costs, per message, a future with its own
// channels, a map entry keyed by a random token, a reply subject, a copy of
// the message, a JSON decode of the ack into fresh structs, and a wakeup of
// the goroutine waiting on the future; in the sink's profile that made the
// Go runtime (allocation, GC, scheduler) the largest share of its CPU. Here
// a round's messages are numbered from one counter, their reply subjects are
// cut from one string, an ack is a slot in a slice (found by the number in
// its reply subject, read without decoding unless it reports an error), and
// the publisher is woken only when it waits: for the window of outstanding
// acks to open, or for the round's last ack. Safe for concurrent use; one
// round at a time (the caller serialises rounds).
type jsAcks struct {
	prefix string // reply subjects: prefix + message number in base 36
	sub    *nats.Subscription

	mu          sync.Mutex
	base        uint64 // number of the round's first message; older acks are stale
	next        uint64 // number of the next round's first message
	state       []ackState
	errs        []error // of the messages whose state is ackFailed
	outstanding int     // messages sent and not answered
	answered    uint64  // acks received so far: progress, for the timeout
	wakeAt      int     // wake the waiter when outstanding <= wakeAt; < 0: nobody waits
	wake        chan struct{}
	peak        int    // the most messages outstanding at once
	replies     string // the round's reply subjects, back to back
	replyEnds   []int
}

type ackState uint8

const (
	ackUnsent ackState = iota
	ackPending
	ackOK
	ackFailed
)

// newJSAcks subscribes to the acknowledgements on nc.
func newJSAcks(nc *nats.Conn) (*jsAcks, error) {
	a := &jsAcks{prefix: nc.NewInbox() + ".", wakeAt: -1, wake: make(chan struct{}, 1)}
	sub, err := nc.Subscribe(a.prefix+"*", a.onAck)
	if err != nil {
		return nil, err
	}
	// The acks of a full window must fit (nats.go drops what a slow
	// subscriber leaves past its limits, and those messages then time out).
	if err := sub.SetPendingLimits(-1, 64<<20); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	a.sub = sub
	return a, nil
}

// begin starts a round of n messages; reply(i) is message i's reply subject.
func (a *jsAcks) begin(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.base, a.next = a.next, a.next+uint64(n)
	a.state = slices.Grow(a.state[:0], n)[:n]
	clear(a.state)
	a.errs = slices.Grow(a.errs[:0], n)[:n]
	clear(a.errs)
	a.outstanding, a.wakeAt = 0, -1
	// One string holds every reply subject of the round.
	b := make([]byte, 0, n*(len(a.prefix)+8))
	a.replyEnds = a.replyEnds[:0]
	for i := range n {
		b = append(b, a.prefix...)
		b = strconv.AppendUint(b, a.base+uint64(i), 36)
		a.replyEnds = append(a.replyEnds, len(b))
	}
	a.replies = string(b)
	select {
	case <-a.wake: // a stale wakeup of the last round
	default:
	}
}

func (a *jsAcks) reply(i int) string {
	start := 0
	if i > 0 {
		start = a.replyEnds[i-1]
	}
	return a.replies[start:a.replyEnds[i]]
}

// sending records that message i is about to be published (its ack may
// arrive before the publish call returns), unless window messages are
// outstanding already: then it returns false.
func (a *jsAcks) sending(i, window int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.outstanding >= window {
		return false
	}
	a.state[i] = ackPending
	a.outstanding++
	a.peak = max(a.peak, a.outstanding)
	return true
}

// unsent takes back sending(i) after the publish failed.
func (a *jsAcks) unsent(i int) {
	a.mu.Lock()
	if a.state[i] == ackPending {
		a.state[i] = ackUnsent
		a.outstanding--
	}
	a.mu.Unlock()
}

// onAck records an acknowledgement (nats.go's subscription goroutine).
func (a *jsAcks) onAck(m *nats.Msg) {
	if len(m.Subject) <= len(a.prefix) {
		return
	}
	num, err := strconv.ParseUint(m.Subject[len(a.prefix):], 36, 64)
	if err != nil {
		return
	}
	ackErr := ackError(m)
	a.mu.Lock()
	defer a.mu.Unlock()
	if num < a.base || num-a.base >= uint64(len(a.state)) {
		return // of an earlier round, given up on
	}
	i := int(num - a.base)
	if a.state[i] != ackPending {
		return
	}
	if ackErr != nil {
		a.state[i], a.errs[i] = ackFailed, ackErr
	} else {
		a.state[i] = ackOK
	}
	a.outstanding--
	a.answered++
	a.wakeIfWaited()
}

func (a *jsAcks) wakeIfWaited() {
	if a.wakeAt >= 0 && a.outstanding <= a.wakeAt {
		a.wakeAt = -1
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

// connectionLost fails every outstanding message: their acks, if the server
// sent them, went with the connection (a retry sends the same dedup ids).
func (a *jsAcks) connectionLost(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, st := range a.state {
		if st == ackPending {
			a.state[i], a.errs[i] = ackFailed, err
		}
	}
	a.outstanding = 0
	a.wakeIfWaited()
}

// await waits until at most limit messages are outstanding. It fails with
// errAckTimeout when no ack at all arrives for timeout (a server that
// stopped answering), and with ctx's error when ctx ends. timer is the
// caller's, stopped.
func (a *jsAcks) await(ctx context.Context, limit int, timeout time.Duration, timer *time.Timer) error {
	a.mu.Lock()
	progress := a.answered // as the timer was armed
	a.mu.Unlock()
	timer.Reset(timeout)
	defer timer.Stop()
	for {
		a.mu.Lock()
		if a.outstanding <= limit {
			a.wakeAt = -1
			a.mu.Unlock()
			return nil
		}
		a.wakeAt = limit
		a.mu.Unlock()
		select {
		case <-a.wake:
		case <-timer.C:
			a.mu.Lock()
			stalled := a.answered == progress
			if stalled {
				a.wakeAt = -1
			}
			progress = a.answered
			a.mu.Unlock()
			if stalled {
				return errAckTimeout
			}
			timer.Reset(timeout) // acks keep coming: a slow stream, not a dead one
		case <-ctx.Done():
			a.mu.Lock()
			a.wakeAt = -1
			a.mu.Unlock()
			return ctx.Err()
		}
	}
}

// end closes the round and returns each message's outcome (ackPending:
// published, never answered) and the errors of those that failed, valid
// until the next begin: acks still to come are stale.
func (a *jsAcks) end() ([]ackState, []error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.base = a.next
	a.outstanding, a.wakeAt = 0, -1
	a.replies = ""
	return a.state, a.errs
}

var (
	ackStreamKey = []byte(`"stream":"`)
	ackErrorKey  = []byte(`"error"`)
)

// ackError reads the stream's answer to a message: nil for a stored (or
// duplicate) message, the stream's API error, or jetstream's no-responders
// error when no stream listens on the subject. A plain ack is recognised
// without decoding it; anything else is decoded as nats.go would.
func ackError(m *nats.Msg) error {
	if len(m.Data) == 0 {
		if m.Header.Get("Status") == "503" {
			return jetstream.ErrNoStreamResponse
		}
		return jetstream.ErrInvalidJSAck
	}
	if d := m.Data; d[0] == '{' && d[len(d)-1] == '}' && !bytes.Contains(d, ackErrorKey) && bytes.Contains(d, ackStreamKey) {
		return nil
	}
	var ack struct {
		Error  *jetstream.APIError `json:"error"`
		Stream string              `json:"stream"`
	}
	if err := json.Unmarshal(m.Data, &ack); err != nil {
		return jetstream.ErrInvalidJSAck
	}
	if ack.Error != nil {
		return ack.Error
	}
	if ack.Stream == "" {
		return jetstream.ErrInvalidJSAck
	}
	return nil
}

var errAckTimeout = errors.New("timed out waiting for the stream's acknowledgement")
