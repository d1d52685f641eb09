package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// sizeUnits maps a lowercased unit suffix to its multiplier. KB and friends
// are decimal and KiB binary, as their names say; the bare letters K, M, G
// are binary because that is what operators mean by "8M" of buffer.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"k":   1 << 10,
	"ki":  1 << 10,
	"kib": 1 << 10,
	"kb":  1000,
	"m":   1 << 20,
	"mi":  1 << 20,
	"mib": 1 << 20,
	"mb":  1000 * 1000,
	"g":   1 << 30,
	"gi":  1 << 30,
	"gib": 1 << 30,
	"gb":  1000 * 1000 * 1000,
	"t":   1 << 40,
	"ti":  1 << 40,
	"tib": 1 << 40,
	"tb":  1000 * 1000 * 1000 * 1000,
}

// ParseSize parses a byte size such as "8MiB", "16 MB", "4k" or "65536".
// Units are case-insensitive: B; K, KiB (1024); KB (1000); likewise M, G, T.
// A plain integer is a number of bytes. Fractions are not accepted, so that
// every size is an exact number of bytes.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%q is not a size: use an integer and an optional unit (B, KiB, MiB, GiB, KB, MB, GB), such as \"8MiB\"", s)
	}
	unit := strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("%q is not a size: unknown unit %q; use B, KiB, MiB, GiB (1024) or KB, MB, GB (1000), such as \"8MiB\"", s, strings.TrimSpace(t[i:]))
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large a size", s)
	}
	return n * mult, nil
}

// ParseDuration parses a duration as time.ParseDuration does ("500ms",
// "1m30s"), and also accepts a leading number of days: "2d", "1d12h".
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	bad := fmt.Errorf("%q is not a duration: use numbers with units (ms, s, m, h, d), such as \"500ms\", \"10s\" or \"1d12h\"", s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i > 0 && i < len(t) && t[i] == 'd' {
		days, err := strconv.ParseInt(t[:i], 10, 64)
		if err != nil || days > int64(math.MaxInt64/(24*time.Hour)) {
			return 0, fmt.Errorf("%q is too long a duration", s)
		}
		d := time.Duration(days) * 24 * time.Hour
		rest := t[i+1:]
		if rest == "" {
			return d, nil
		}
		r, err := time.ParseDuration(rest)
		if err != nil || r < 0 {
			return 0, bad
		}
		if d > math.MaxInt64-r {
			return 0, fmt.Errorf("%q is too long a duration", s)
		}
		return d + r, nil
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		// time's own message quotes the input back with Go syntax and adds
		// nothing a user can act on; ours names the accepted units.
		return 0, bad
	}
	return d, nil
}
