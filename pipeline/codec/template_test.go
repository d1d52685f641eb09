package codec

import (
	"bytes"
	"fmt"
	"testing"
)

// encodeLikeReference transcodes ev with e and fails unless the output and
// the error are the reference's; it reports whether e's template took
// the event (it matched before the call).
func encodeLikeReference(t *testing.T, e *Encoder, ev []byte) bool {
	t.Helper()
	hit := false
	if len(e.tpl.ops) > 0 && e.tpl.off == 0 {
		_, hit = e.tpl.append(nil, ev)
	}
	want, wantErr := AppendJSONRef([]byte("prefix"), ev)
	got, err := e.AppendJSON([]byte("prefix"), ev)
	if err != wantErr {
		t.Fatalf("%x: error %v, the reference's %v", ev, err, wantErr)
	}
	if err == nil && !bytes.Equal(got, want) {
		t.Fatalf("%x:\ngot  %q\nwant %q", ev, got, want)
	}
	return hit
}

// entry is one key and its msgpack value, for event.
type entry struct {
	key string
	val []byte
}

func event(entries ...entry) []byte {
	ev := AppendMapHeader(nil, len(entries))
	for _, e := range entries {
		ev = append(AppendString(ev, e.key), e.val...)
	}
	return ev
}

func str(s string) []byte { return AppendString(nil, s) }
func num(v uint64) []byte { return AppendUint(nil, v) }

// TestEncoderTemplate runs streams through one Encoder and checks every
// event against the reference, and that the template takes the events
// of a steady stream once it has seen which values vary.
func TestEncoderTemplate(t *testing.T) {
	t.Run("steady stream", func(t *testing.T) {
		var e Encoder
		hits := 0
		for seq := range uint64(300) {
			if encodeLikeReference(t, &e, synthEventSeq(seq*1000003)) {
				hits++
			}
		}
		// The first event is learned, the next ones find the values
		// that vary (seq grows into wider msgpack integers on the way).
		if hits < 290 {
			t.Errorf("the template took %d of 300 events, want at least 290", hits)
		}
	})
	t.Run("values change type, length and escaping", func(t *testing.T) {
		var e Encoder
		nested := AppendMapHeader(nil, 1)
		nested = append(AppendString(nested, "a"), AppendArrayHeader(nil, 2)...)
		nested = AppendString(AppendInt(nested, -1), "x\u2028\"")
		values := [][]byte{num(1), num(300), num(1 << 40), AppendInt(nil, -5), AppendInt(nil, -1000),
			str(""), str("short"), str("needs \"escaping\"\n"), str("é☃"), str("\xff\xfe invalid"),
			str(string(bytes.Repeat([]byte("long "), 20))), nested, {0xc0}, {0xc3},
			AppendFloat64(nil, 1.5), AppendBytes(nil, []byte{1, 2, 3})}
		hits := 0
		for round := range 3 {
			for i, v := range values {
				ev := event(entry{"time", str(fmt.Sprint("t", round, i))}, entry{"host", str("vm")},
					entry{"v", v}, entry{"pid", num(42)}, entry{"comm", str("bash")})
				if encodeLikeReference(t, &e, ev) {
					hits++
				}
			}
		}
		if hits == 0 {
			t.Error("the template took no event")
		}
	})
	t.Run("cut short and trailing bytes", func(t *testing.T) {
		var e Encoder
		for seq := range uint64(5) {
			encodeLikeReference(t, &e, synthEventSeq(seq))
		}
		ev := synthEventSeq(99)
		for cut := range len(ev) {
			encodeLikeReference(t, &e, ev[:cut])
			encodeLikeReference(t, &e, ev) // the template stays usable
		}
		encodeLikeReference(t, &e, append(bytes.Clone(ev), 0xc1, 0x93))
	})
	t.Run("keys that change", func(t *testing.T) {
		var e Encoder
		for i, key := range []string{"comm", "comm", "comx", "co", "co\"m", "c\u00e9", "comm", "comm"} {
			ev := event(entry{"time", str(fmt.Sprint(i))}, entry{key, str("bash")}, entry{"seq", num(uint64(i))})
			encodeLikeReference(t, &e, ev)
		}
		ev := AppendMapHeader(nil, 3)
		ev = AppendUint(AppendInt(ev, -7), 1)
		ev = AppendUint(AppendString(ev, "pid"), 3)
		ev = AppendString(AppendUint(ev, 12), "value of a key that is no string")
		for range 3 {
			encodeLikeReference(t, &e, ev)
		}
		encodeLikeReference(t, &e, event(entry{"time", str("x")}))
		encodeLikeReference(t, &e, AppendMapHeader(nil, 0))
	})
	t.Run("shapes in turn", func(t *testing.T) {
		var e Encoder
		hits := 0
		for seq := range uint64(200) {
			if encodeLikeReference(t, &e, synthEventSeq(seq)) {
				hits++
			}
			encodeLikeReference(t, &e, traceOpenEventSeq(seq))
		}
		if hits < 190 {
			t.Errorf("the template took %d of 200 events of the first shape, want at least 190", hits)
		}
	})
	t.Run("shapes in runs back off", func(t *testing.T) {
		var e Encoder
		for seq := range uint64(200) {
			if seq%4 < 2 {
				encodeLikeReference(t, &e, synthEventSeq(seq))
			} else {
				encodeLikeReference(t, &e, traceOpenEventSeq(seq))
			}
		}
		if e.tpl.off == 0 {
			t.Error("two events of each shape in turn: the template did not back off")
		}
		for seq := range uint64(relearnBackoff + 20) {
			encodeLikeReference(t, &e, synthEventSeq(seq))
		}
		if len(e.tpl.ops) == 0 {
			t.Error("one shape again: no template after the back-off")
		}
	})
	t.Run("a rare event of another shape", func(t *testing.T) {
		var e Encoder
		hits := 0
		for seq := range uint64(600) {
			ev := synthEventSeq(seq)
			if seq%50 == 49 {
				ev = traceOpenEventSeq(seq)
			}
			if encodeLikeReference(t, &e, ev) {
				hits++
			}
		}
		// All but the first few and the 12 strays.
		if hits < 580 {
			t.Errorf("the template took %d of 600 events, want at least 580", hits)
		}
	})
	t.Run("values that repeat", func(t *testing.T) {
		// A variable value the same for runs of events (a burst's time),
		// changing to values of other lengths and types, one a prefix of
		// another's text, and one too long to be kept.
		var e Encoder
		values := [][]byte{str("2026-12-04T05:00:00.000000001Z"), str("2026-12-04T05:00:00.00000001Z"),
			str("2026-12-04T05:00:00.000000001Z2"), num(7), num(700), num(7), str(string(bytes.Repeat([]byte("x"), 60))),
			str("needs \"escaping\""), {0xc0}, AppendInt(nil, -3)}
		rng := uint64(1)
		seq := uint64(0)
		for _, v := range append(values, values...) {
			rng = rng*6364136223846793005 + 1442695040888963407
			for range 1 + rng>>60 {
				seq++
				ev := event(entry{"time", v}, entry{"host", str("vm")}, entry{"seq", num(seq)}, entry{"ts", v})
				encodeLikeReference(t, &e, ev)
				for _, cut := range []int{len(ev) - 1, len(ev) - len(v) + 1} {
					encodeLikeReference(t, &e, ev[:cut]) // cut inside the last value, kept or not
				}
			}
		}
		kept := 0
		for _, op := range e.tpl.ops {
			if len(op.lastMP) > 0 {
				kept++
			}
		}
		if kept == 0 {
			t.Error("no op kept a value")
		}
	})
	t.Run("too deep", func(t *testing.T) {
		var e Encoder
		deep := []byte{}
		for range MaxDepth {
			deep = append(deep, 0x91)
		}
		deep = append(deep, 1)
		for i := range 4 {
			v := num(uint64(i))
			if i >= 2 {
				v = deep
			}
			encodeLikeReference(t, &e, event(entry{"v", v}, entry{"k", str("x")}))
		}
	})
}
