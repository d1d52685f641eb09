package wasmstages

import (
	"math/rand/v2"
	"testing"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// slowCheck is what checkEvent accepted before wellFormedMap: one map,
// as codec.Skip reads it, and nothing after it.
func slowCheck(b []byte) bool {
	if len(b) == 0 || (b[0]&0xf0 != 0x80 && b[0] != 0xde && b[0] != 0xdf) {
		return false
	}
	n, err := codec.Skip(b)
	return err == nil && n == len(b)
}

// validationSeeds are maps of every kind of value, and nestings at and
// past codec.MaxDepth.
func validationSeeds() [][]byte {
	var seeds [][]byte
	b := codec.AppendMapHeader(nil, 9)
	b = codec.AppendInt(codec.AppendString(b, "neg"), -1234567)
	b = codec.AppendUint(codec.AppendString(b, "big"), 1<<63)
	b = codec.AppendFloat64(codec.AppendString(b, "f"), 1.5)
	b = codec.AppendString(codec.AppendString(b, "long"), string(make([]byte, 300)))
	b = codec.AppendBytes(codec.AppendString(b, "bin"), []byte{1, 2, 3})
	b = codec.AppendNil(codec.AppendString(b, "nil"))
	b = append(codec.AppendString(b, "ext"), 0xd6, 1, 2, 3, 4, 5)
	b = append(codec.AppendString(b, "ext8"), 0xc7, 2, 9, 1, 2)
	b = codec.AppendArrayHeader(codec.AppendString(b, "list"), 20)
	for i := range 20 {
		b = codec.AppendInt(b, int64(i))
	}
	seeds = append(seeds, b)
	for _, depth := range []int{codec.MaxDepth - 1, codec.MaxDepth, codec.MaxDepth + 1} {
		d := codec.AppendMapHeader(nil, 1)
		for range depth {
			d = codec.AppendArrayHeader(codec.AppendString(d, "k"), 1)
			d = codec.AppendMapHeader(d, 1)
		}
		d = codec.AppendInt(codec.AppendString(d, "x"), 1)
		seeds = append(seeds, d)
	}
	// Maps in maps only (the fixed containers wellFormedMap counts on a
	// stack of its own, past which wellFormedAt takes over).
	for _, depth := range []int{6, 7, 8, codec.MaxDepth - 1, codec.MaxDepth, codec.MaxDepth + 1} {
		d := codec.AppendMapHeader(nil, 1)
		for range depth {
			d = codec.AppendMapHeader(codec.AppendString(d, "k"), 1)
		}
		seeds = append(seeds, codec.AppendInt(codec.AppendString(d, "x"), 1))
	}
	// Nested maps and lists that end with values after them, as in a
	// mapped event: {"a": {"b": {"c": 1}, "d": [1, {"e": 2}, []], "f": 3}, "g": {}, "h": 4}.
	n := codec.AppendMapHeader(nil, 3)
	n = codec.AppendMapHeader(codec.AppendString(n, "a"), 3)
	n = codec.AppendMapHeader(codec.AppendString(n, "b"), 1)
	n = codec.AppendInt(codec.AppendString(n, "c"), 1)
	n = codec.AppendArrayHeader(codec.AppendString(n, "d"), 3)
	n = codec.AppendMapHeader(codec.AppendInt(n, 1), 1)
	n = codec.AppendArrayHeader(codec.AppendInt(codec.AppendString(n, "e"), 2), 0)
	n = codec.AppendInt(codec.AppendString(n, "f"), 3)
	n = codec.AppendMapHeader(codec.AppendString(n, "g"), 0)
	seeds = append(seeds, codec.AppendInt(codec.AppendString(n, "h"), 4))
	seeds = append(seeds, []byte{0x80}, []byte{0xde, 0, 0}, []byte{0xdf, 0, 0, 0, 1, 0xa1, 'a', 0xc0}, []byte{0x81, 0xa1, 'a', 0xc1})
	return seeds
}

// TestWellFormedMapAgreesWithCodec: the fast check accepts exactly what
// codec.Skip does, on valid events, every truncation of them, trailing
// bytes and random corruptions.
func TestWellFormedMapAgreesWithCodec(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(b []byte) {
		t.Helper()
		if got, want := wellFormedMap(b), slowCheck(b); got != want {
			t.Fatalf("wellFormedMap(% x) = %v, codec says %v", b, got, want)
		}
	}
	for _, seed := range validationSeeds() {
		check(seed)
		check(append(append([]byte(nil), seed...), 0))
		for n := range len(seed) {
			check(seed[:n])
		}
		for range 2000 {
			b := append([]byte(nil), seed...)
			for range 1 + rng.IntN(3) {
				b[rng.IntN(len(b))] = byte(rng.Uint32())
			}
			check(b)
		}
	}
}

func FuzzWellFormedMap(f *testing.F) {
	for _, seed := range validationSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := wellFormedMap(b), slowCheck(b); got != want {
			t.Fatalf("wellFormedMap(% x) = %v, codec says %v", b, got, want)
		}
	})
}

func BenchmarkCheckEvent(b *testing.B) {
	ev := validationSeeds()[0]
	b.Run("wellFormedMap", func(b *testing.B) {
		for b.Loop() {
			if !wellFormedMap(ev) {
				b.Fatal("rejected")
			}
		}
	})
	b.Run("codec", func(b *testing.B) {
		for b.Loop() {
			if !slowCheck(ev) {
				b.Fatal("rejected")
			}
		}
	})
}

// extendsInput accepts only events checkEvent accepts: enrichments of a
// valid input, corrupted in their added part, header or copy.
func TestExtendsInputIsSound(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	inputs := validationSeeds()[:1]
	inputs = append(inputs, codec.AppendString(codec.AppendString(codec.AppendMapHeader(nil, 1), "comm"), "sh"), []byte{0x80})
	accepted := 0
	for _, in := range inputs {
		m, ih := mapHead(in)
		for _, added := range []int{0, 1, 3, 20} {
			p := codec.AppendMapHeader(nil, m+added)
			p = append(p, in[ih:]...)
			for k := range added {
				p = codec.AppendString(p, "k"+string(rune('a'+k)))
				p = codec.AppendArrayHeader(p, 2)
				p = codec.AppendInt(codec.AppendString(p, "v"), int64(k))
			}
			if !extendsInput(p, in) || !slowCheck(p) {
				t.Fatalf("input % x + %d entries: extendsInput %v, codec %v; want both true", in, added, extendsInput(p, in), slowCheck(p))
			}
			for range 3000 {
				q := append([]byte(nil), p...)
				switch rng.IntN(3) {
				case 0:
					q[rng.IntN(len(q))] = byte(rng.Uint32())
				case 1:
					q = q[:rng.IntN(len(q))]
				default:
					q = append(q, byte(rng.Uint32()))
				}
				if extendsInput(q, in) {
					accepted++
					if !slowCheck(q) {
						t.Fatalf("extendsInput accepts % x (from input % x), which codec rejects", q, in)
					}
				}
			}
		}
	}
	if accepted == 0 {
		t.Error("no corruption was accepted: the test proves little")
	}
}
