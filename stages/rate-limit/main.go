// Command rate-limit is a stateful stage: a token bucket per key lets at
// most burst events through at once and rate per second on average; the
// events it suppresses are counted per key and reported in a summary event
// when the key's bucket lets an event through again, and on the stage's
// tick for keys still being suppressed.
//
//	params = {
//	  key      = ["comm"]   # the fields that make the key (default ["comm"])
//	  rate     = 10         # events per second per key (may be fractional)
//	  burst    = 20         # bucket size (default: rate, at least 1)
//	  max_keys = 10000      # keys tracked at most; idle full buckets go first
//	}
//
// Buckets live in the instance: run the stage with workers = 1 (the
// default), or each worker limits its share of the events separately.
//
// A summary event has the envelope of the last suppressed event (host,
// source, gadget), type = "rate_limit", the key fields, suppressed (the
// count), first and last (times, RFC 3339) and window_s.
package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/sdk/go/sluice"
)

type params struct {
	Key     []string `sluice:"key"`
	Rate    float64  `sluice:"rate,required"`
	Burst   float64  `sluice:"burst"`
	MaxKeys int      `sluice:"max_keys"`
}

type bucket struct {
	tokens     float64
	last       int64 // of the last refill, ns since the epoch (time.Time's arithmetic costs more in Wasm)
	seen       int64 // of the key's last event (refills move last, not seen)
	suppressed int64
	first      time.Time // first suppression since the last summary
	lastSup    time.Time
	keyVals    []string // the key fields' values, as text
	key        string   // its key in buckets
	host, src  string
	gadget     string
}

var (
	keyFields = []string{"comm"}
	rate      float64
	burst     float64
	maxKeys   = 10000
	buckets   = map[string]*bucket{}
	keyBuf    []byte
	dropped   *sluice.Counter
	summaries *sluice.Counter
)

func init() {
	dropped = sluice.NewCounter("suppressed")
	summaries = sluice.NewCounter("summaries")
	sluice.OnInit(func(p sluice.Params) error {
		// A fresh instance starts from these anyway; reset them for a
		// second init in the same process (the native tests).
		keyFields, maxKeys, buckets, recent = []string{"comm"}, 10000, map[string]*bucket{}, [len(recent)]recentKey{}
		var cfg params
		if err := p.Decode(&cfg); err != nil {
			return err
		}
		if cfg.Rate <= 0 {
			return fmt.Errorf("params.rate: %v; want events per second > 0", cfg.Rate)
		}
		rate, burst = cfg.Rate, cfg.Burst
		if burst == 0 {
			burst = max(rate, 1)
		}
		if burst < 1 {
			return fmt.Errorf("params.burst: %v; want at least 1", burst)
		}
		if cfg.Key != nil {
			if len(cfg.Key) == 0 {
				return fmt.Errorf("params.key: empty; name at least one field")
			}
			keyFields = cfg.Key
		}
		if cfg.MaxKeys != 0 {
			if cfg.MaxKeys < 1 {
				return fmt.Errorf("params.max_keys: %d; want at least 1", cfg.MaxKeys)
			}
			maxKeys = cfg.MaxKeys
		}
		return nil
	})
	sluice.FlatMap(limit)
	sluice.OnTick(func(now time.Time, out *sluice.Output) {
		batchNow, batchNs = now, now.UnixNano()
		for _, b := range buckets {
			if b.suppressed > 0 {
				emitSummary(b, out)
			}
		}
		refillAll(batchNs)
	})
}

// batchNow is read once per batch (every batch starts with input 0): a host
// call per event would cost more than the rest of the stage.
var (
	batchNow time.Time
	batchNs  int64 // batchNow in ns
)

func limit(ev *sluice.Event, out *sluice.Output) {
	if ev.Index() == 0 {
		batchNow = sluice.Now()
		batchNs = batchNow.UnixNano()
	}

	var key []byte
	if len(keyFields) == 1 {
		// One key field (comm, the default): a string value is the key as
		// it is, read in place (read only: it is the batch's).
		v := ev.Get(keyFields[0])
		if sb, isStr := v.StringBytes(); isStr {
			key = sb
		} else {
			keyBuf = appendText(keyBuf[:0], v)
			key = keyBuf
		}
	} else {
		keyBuf = keyBuf[:0]
		for i, f := range keyFields {
			if i > 0 {
				keyBuf = append(keyBuf, 0)
			}
			keyBuf = appendText(keyBuf, ev.Get(f))
		}
		key = keyBuf
	}
	b, ok := cached(key)
	if !ok {
		b, ok = buckets[string(key)]
	}
	if !ok {
		if len(buckets) >= maxKeys {
			evict(out)
		}
		b = &bucket{tokens: burst, last: batchNs}
		for _, f := range keyFields {
			b.keyVals = append(b.keyVals, string(appendText(nil, ev.Get(f))))
		}
		b.key = string(key)
		buckets[b.key] = b
	}
	if !ok || recent[slot(key)].b != b {
		recent[slot(key)] = recentKey{b.key, b}
	}
	refill(b, batchNs)
	b.seen = batchNs
	if b.tokens >= 1 {
		b.tokens--
		if b.suppressed > 0 {
			emitSummary(b, out)
		}
		out.Emit(ev)
		return
	}
	if b.suppressed == 0 {
		b.first = batchNow
	}
	b.suppressed++
	b.lastSup = batchNow
	keepString(&b.host, ev.StringBytes("host"))
	keepString(&b.src, ev.StringBytes("source"))
	keepString(&b.gadget, ev.StringBytes("gadget"))
	dropped.Inc()
}

// recent remembers the buckets of the last keys by a hash of their first
// byte and length: a map lookup hashes the whole key, which in Go's Wasm
// code costs more than comparing it with one remembered key. Cleared
// whenever a bucket is deleted.
var recent [16]recentKey

type recentKey struct {
	key string
	b   *bucket
}

func slot(key []byte) int {
	if len(key) == 0 {
		return 0
	}
	return (len(key)*7 + int(key[0])) & (len(recent) - 1)
}

func cached(key []byte) (*bucket, bool) {
	r := &recent[slot(key)]
	if r.b != nil && r.key == string(key) {
		return r.b, true
	}
	return nil, false
}

// keepString sets *dst to s, copying only when it changed: the events of one
// key share their envelope, so a flood of suppressed events allocates
// nothing.
func keepString(dst *string, s []byte) {
	if string(s) != *dst {
		*dst = string(s)
	}
}

func refill(b *bucket, now int64) {
	if el := now - b.last; el > 0 {
		b.tokens = min(burst, b.tokens+float64(el)/1e9*rate)
		b.last = now
	}
}

// refillAll forgets keys whose bucket is full and that have nothing to
// report: they behave exactly like a new key.
func refillAll(now int64) {
	for k, b := range buckets {
		refill(b, now)
		if b.tokens >= burst && b.suppressed == 0 {
			delete(buckets, k)
			recent = [len(recent)]recentKey{}
		}
	}
}

// evict makes room for a new key: full, quiet buckets go first; if there
// are none, the one idle longest is reported and dropped.
func evict(out *sluice.Output) {
	refillAll(batchNs)
	if len(buckets) < maxKeys {
		return
	}
	var oldestKey string
	var oldest *bucket
	for k, b := range buckets {
		if oldest == nil || b.seen < oldest.seen {
			oldestKey, oldest = k, b
		}
	}
	if oldest.suppressed > 0 {
		emitSummary(oldest, out)
	}
	delete(buckets, oldestKey)
	recent = [len(recent)]recentKey{}
}

func emitSummary(b *bucket, out *sluice.Output) {
	e := sluice.NewEvent().
		SetString("time", batchNow.UTC().Format(time.RFC3339Nano)).
		SetString("host", b.host).
		SetString("source", b.src).
		SetString("gadget", b.gadget).
		SetString("type", "rate_limit")
	for i, f := range keyFields {
		e.SetString(f, b.keyVals[i])
	}
	e.SetInt("suppressed", b.suppressed).
		SetString("first", b.first.UTC().Format(time.RFC3339Nano)).
		SetString("last", b.lastSup.UTC().Format(time.RFC3339Nano)).
		SetFloat("window_s", b.lastSup.Sub(b.first).Seconds())
	out.Emit(e)
	summaries.Inc()
	b.suppressed = 0
}

// appendText renders a key field as text (strings as they are, numbers in
// decimal), so uid 0 and comm "0" are keyed the same way in a summary.
func appendText(dst []byte, v sluice.Value) []byte {
	switch v.Type() {
	case sluice.TypeString, sluice.TypeBytes:
		b, _ := v.StringBytes()
		return append(dst, b...)
	case sluice.TypeInt:
		if n, ok := v.Int(); ok {
			return strconv.AppendInt(dst, n, 10)
		}
		u, _ := v.Uint()
		return strconv.AppendUint(dst, u, 10)
	case sluice.TypeMissing:
		return dst
	}
	return append(dst, strings.TrimSpace(fmt.Sprint(v.Raw()))...)
}

func main() {}
