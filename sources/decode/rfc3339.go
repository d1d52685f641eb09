package decode

import "sync/atomic"

// appendRFC3339Nano appends the UTC time unixNano as time.RFC3339Nano does
// ("2006-01-02T15:04:05.999999999Z", trailing zeros of the fraction
// trimmed), without time.Time's general formatter: every event carries one
// or two timestamps, and the general path cost a third of a decode.
func appendRFC3339Nano(dst []byte, unixNano int64) []byte {
	secs := unixNano / 1e9
	nanos := unixNano % 1e9
	if nanos < 0 {
		secs--
		nanos += 1e9
	}
	n := len(dst)
	// Events come in bursts from the same second: its date and time of
	// day are rendered once and copied.
	if c := lastSecond.Load(); c != nil && c.secs == secs {
		dst = append(dst, c.text[:]...)
	} else {
		dst = appendSecond(dst, secs)
		c := &renderedSecond{secs: secs}
		copy(c.text[:], dst[n:])
		lastSecond.Store(c)
	}
	if nanos == 0 {
		return append(dst, 'Z')
	}
	dst = append(dst, ".000000000Z"...)
	b := dst[n+19:]
	v := int(nanos)
	b[9] = byte('0' + v%10)
	v /= 10
	put2(b[7:], v%100)
	v /= 100
	put2(b[5:], v%100)
	v /= 100
	put2(b[3:], v%100)
	put2(b[1:], v/100)
	end := 10
	for b[end-1] == '0' {
		end--
	}
	b[end] = 'Z'
	return dst[:n+19+end+1]
}

// renderedSecond is a second rendered as "YYYY-MM-DDTHH:MM:SS".
type renderedSecond struct {
	secs int64
	text [19]byte
}

// lastSecond is the second appendRFC3339Nano rendered last, shared by
// every goroutine: a new value when the second changes, never modified.
var lastSecond atomic.Pointer[renderedSecond]

// appendSecond appends secs (Unix seconds) as "YYYY-MM-DDTHH:MM:SS".
func appendSecond(dst []byte, secs int64) []byte {
	days := secs / 86400
	rem := secs % 86400
	if rem < 0 {
		days--
		rem += 86400
	}
	// An int64 of nanoseconds spans the years 1677 to 2262: always four
	// digits.
	year, month, day := civilFromDays(days)
	hour, minute, second := rem/3600, rem/60%60, rem%60
	n := len(dst)
	dst = append(dst, "0000-00-00T00:00:00"...)
	b := dst[n:]
	put2(b[0:], int(year/100))
	put2(b[2:], int(year%100))
	put2(b[5:], int(month))
	put2(b[8:], int(day))
	put2(b[11:], int(hour))
	put2(b[14:], int(minute))
	put2(b[17:], int(second))
	return dst
}

// civilFromDays converts days since 1970-01-01 to a proleptic Gregorian
// date (Howard Hinnant's algorithm: exact for every int64 day count that
// fits a year in int64).
func civilFromDays(z int64) (year, month, day int64) {
	z += 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	year = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	day = doy - (153*mp+2)/5 + 1
	month = mp + 3
	if mp >= 10 {
		month = mp - 9
	}
	if month <= 2 {
		year++
	}
	return year, month, day
}

const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

// put2 writes v (0 to 99) as two digits.
func put2(b []byte, v int) {
	b[0] = digitPairs[2*v]
	b[1] = digitPairs[2*v+1]
}
