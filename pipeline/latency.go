package pipeline

import (
	"time"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// envelopeTime returns the envelope time of an encoded event (its "time"
// key, RFC 3339) in Unix nanoseconds. The decoder writes it as UTC with a
// trimmed fraction ("2006-01-02T15:04:05.999999999Z"), which is parsed
// here without the time package; anything else goes through time.Parse.
func envelopeTime(data []byte) (int64, bool) {
	raw, ok := codec.Lookup(data, "time")
	if !ok {
		return 0, false
	}
	s, _, err := codec.ReadString(raw)
	if err != nil {
		return 0, false
	}
	if t, ok := parseUTC(s); ok {
		return t, true
	}
	t, err := time.Parse(time.RFC3339Nano, string(s))
	if err != nil {
		return 0, false
	}
	return t.UnixNano(), true
}

// parseUTC parses "YYYY-MM-DDTHH:MM:SS[.fraction]Z".
func parseUTC(s []byte) (int64, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[len(s)-1] != 'Z' {
		return 0, false
	}
	num := func(b []byte) (int64, bool) {
		var v int64
		for _, c := range b {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int64(c-'0')
		}
		return v, true
	}
	year, ok1 := num(s[0:4])
	month, ok2 := num(s[5:7])
	day, ok3 := num(s[8:10])
	hour, ok4 := num(s[11:13])
	minute, ok5 := num(s[14:16])
	sec, ok6 := num(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 60 {
		return 0, false
	}
	var nanos int64
	if frac := s[19 : len(s)-1]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return 0, false
		}
		v, ok := num(frac[1:])
		if !ok {
			return 0, false
		}
		for range 10 - len(frac) {
			v *= 10
		}
		nanos = v
	}
	// Days from the civil date (Howard Hinnant's algorithm).
	y := year
	if month <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (month + 9) % 12
	doy := (153*mp+2)/5 + day - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	days := era*146097 + doe - 719468
	return ((days*24+hour)*60+minute)*60*1e9 + sec*1e9 + nanos, true
}
