package wasmbpf

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// Limits on the guest's output in the log.
const (
	maxLine       = 4 << 10 // longer lines are cut
	logBurst      = 100
	logPerSecond  = 100
	lineArenaSize = 64 << 10
)

// lineWriter turns the guest's stdout or stderr into log lines (rate
// limited) and, when the source emits lines, into events, one per line.
// WASI writes come from the guest's goroutine; flush may come from Run's
// once the guest returned. Safe for concurrent use.
type lineWriter struct {
	a      *App
	stream string
	level  slog.Level
	schema *pipeline.Schema

	mu  sync.Mutex
	buf []byte
	// The log's token bucket: a guest printing per record must not flood
	// the agent's log.
	tokens     float64
	lastRefill time.Time
	suppressed int
	arena      []byte
}

func newLineWriter(a *App, stream string, level slog.Level) *lineWriter {
	return &lineWriter{a: a, stream: stream, level: level, schema: lineSchema(a.cfg.App), tokens: logBurst}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	var batch []pipeline.Event
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		batch = w.line(w.buf[:i], batch)
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > maxLine {
		batch = w.line(w.buf[:maxLine], batch)
		w.buf = w.buf[maxLine:]
	}
	if len(w.buf) == 0 {
		w.buf = nil // do not pin a large buffer
	}
	w.emit(batch)
	return len(p), nil
}

// flush writes out a last line without its newline.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 {
		return
	}
	w.emit(w.line(w.buf, nil))
	w.buf = nil
}

// line logs one line and appends its event when lines are emitted.
func (w *lineWriter) line(l []byte, batch []pipeline.Event) []pipeline.Event {
	l = bytes.TrimSuffix(l, []byte{'\r'})
	if len(l) > maxLine {
		l = l[:maxLine]
	}
	w.log(l)
	if !w.a.cfg.Emit.lines() {
		return batch
	}
	if cap(w.arena)-len(w.arena) < len(l)+256 {
		w.arena = make([]byte, 0, max(lineArenaSize, len(l)+256))
	}
	seq := w.a.cfg.Seq.Add(1)
	start := len(w.arena)
	w.arena = appendLineEvent(w.arena, w.a.cfg, w.stream, l, seq, time.Now())
	return append(batch, pipeline.Event{Data: w.arena[start:len(w.arena):len(w.arena)], Schema: w.schema, Source: w.a.cfg.Source, Seq: seq})
}

func (w *lineWriter) emit(batch []pipeline.Event) {
	if len(batch) == 0 {
		return
	}
	a := w.a
	if err := a.out.Emit(a.emitCtx, batch); err != nil && a.emitCtx.Err() == nil {
		a.log.Warn("emit the guest's output", "error", err)
	}
}

func (w *lineWriter) log(l []byte) {
	a := w.a
	if !a.log.Enabled(context.Background(), w.level) {
		return
	}
	now := time.Now()
	if !w.lastRefill.IsZero() {
		w.tokens = min(logBurst, w.tokens+now.Sub(w.lastRefill).Seconds()*logPerSecond)
	}
	w.lastRefill = now
	if w.tokens < 1 {
		w.suppressed++
		a.m.logSuppressed.Inc()
		return
	}
	w.tokens--
	attrs := []any{"stream", w.stream}
	if w.suppressed > 0 {
		attrs = append(attrs, "suppressed", w.suppressed)
		w.suppressed = 0
	}
	a.log.Log(context.Background(), w.level, string(l), attrs...)
}

// appendLineEvent encodes one line of the guest's output as an event:
// the envelope, stream and line.
func appendLineEvent(dst []byte, cfg Config, stream string, line []byte, seq uint64, now time.Time) []byte {
	dst = codec.AppendMapHeader(dst, 7)
	dst = codec.AppendString(dst, "time")
	var ts [40]byte
	dst = codec.AppendStringBytes(dst, now.UTC().AppendFormat(ts[:0], time.RFC3339Nano))
	dst = codec.AppendString(dst, "host")
	dst = codec.AppendString(dst, cfg.Host)
	dst = codec.AppendString(dst, "source")
	dst = codec.AppendString(dst, cfg.Source)
	dst = codec.AppendString(dst, "gadget")
	dst = codec.AppendString(dst, cfg.App)
	dst = codec.AppendString(dst, "seq")
	dst = codec.AppendUint(dst, seq)
	dst = codec.AppendString(dst, "stream")
	dst = codec.AppendString(dst, stream)
	dst = codec.AppendString(dst, "line")
	return codec.AppendStringBytes(dst, line)
}
