package codec

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestAppendUint(t *testing.T) {
	check := func(v uint64) {
		if got, want := string(appendUint([]byte("x"), v)), "x"+strconv.FormatUint(v, 10); got != want {
			t.Fatalf("appendUint(%d) = %q, want %q", v, got, want)
		}
	}
	for p := uint64(1); p < math.MaxUint64/10; p *= 10 {
		for _, v := range []uint64{p - 1, p, p + 1, 2*p - 1, 9*p + p - 1} {
			check(v)
		}
	}
	for v := range uint64(100000) {
		check(v)
	}
	check(math.MaxUint64)
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000000 {
		check(r.Uint64() >> r.UintN(64))
	}
}
