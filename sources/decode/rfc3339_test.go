package decode

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// The fast formatter writes exactly what time.RFC3339Nano does.
func TestAppendRFC3339Nano(t *testing.T) {
	cases := []int64{math.MaxInt64, math.MinInt64, 0, 1, -1, 999_999_999, 1e9, -1e9, 951_782_400e9 /* 2000-02-29 */, 4_107_542_399e9 + 999_999_990,
		time.Date(2026, 12, 1, 12, 6, 30, 644270234, time.UTC).UnixNano(), time.Date(1969, 12, 31, 23, 59, 59, 500, time.UTC).UnixNano()}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		cases = append(cases, r.Int64(), -r.Int64(), r.Int64N(4e18)) // all of int64: 1677 to 2262
	}
	for _, ns := range cases {
		// Twice, then a neighbour: the second is rendered in full once,
		// then copied from the cache.
		for _, v := range []int64{ns, ns, ns ^ 1, ns &^ 0xff} {
			want := time.Unix(0, v).UTC().Format(time.RFC3339Nano)
			if got := string(appendRFC3339Nano(nil, v)); got != want {
				t.Fatalf("appendRFC3339Nano(%d) = %s, want %s", v, got, want)
			}
		}
	}
}

func BenchmarkAppendRFC3339Nano(b *testing.B) {
	buf := make([]byte, 0, 64)
	ns := time.Now().UnixNano()
	b.ReportAllocs()
	for b.Loop() {
		buf = appendRFC3339Nano(buf[:0], ns)
	}
}

// BenchmarkTimeAppendFormat is the time package's formatter on the same
// value, for the ratio.
func BenchmarkTimeAppendFormat(b *testing.B) {
	buf := make([]byte, 0, 64)
	ns := time.Now().UnixNano()
	b.ReportAllocs()
	for b.Loop() {
		buf = time.Unix(0, ns).UTC().AppendFormat(buf[:0], time.RFC3339Nano)
	}
}
