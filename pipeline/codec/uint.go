package codec

import (
	"encoding/binary"
	"slices"
)

// eightDigits returns v (below 10^8) as eight ASCII digits with leading
// zeros, the first digit in the lowest byte (a little-endian store
// writes them in order). It splits v into two halves of four digits, those
// into pairs, the pairs into digits, each step in the lanes of one word:
// divisions by 100 and 10 are multiplications and shifts exact in the
// ranges the lanes hold (below 10^4 and 10^2), whose carries stay out of
// the bits the masks keep.
func eightDigits(v uint32) uint64 {
	x := uint64(v/10000) | uint64(v%10000)<<32
	hundreds := (x * 10486 >> 20) & 0x0000007f0000007f
	x = (x-hundreds*100)<<16 | hundreds
	tens := (x * 103 >> 10) & 0x000f000f000f000f
	x = (x-tens*10)<<8 | tens
	return x | 0x3030303030303030
}

// appendUint appends v in decimal, as strconv.AppendUint(dst, v, 10),
// eight digits at a time, straight into dst: the digits a block lacks
// are shifted out of its word and the next block stored over them.
func appendUint(dst []byte, v uint64) []byte {
	if v < 100 {
		if v < 10 {
			return append(dst, '0'+byte(v))
		}
		return append(dst, digitPairs[2*v], digitPairs[2*v+1])
	}
	l := len(dst)
	if cap(dst)-l < 24 {
		dst = slices.Grow(dst, 24)
	}
	out := dst[l : l+24]
	if v < 1e8 {
		n := decimalLen(v)
		binary.LittleEndian.PutUint64(out, eightDigits(uint32(v))>>(8*(8-n)))
		return dst[:l+n]
	}
	hi, lo := v/1e8, uint32(v%1e8)
	if hi < 1e8 {
		n := decimalLen(hi)
		binary.LittleEndian.PutUint64(out, eightDigits(uint32(hi))>>(8*(8-n)))
		binary.LittleEndian.PutUint64(out[n:], eightDigits(lo))
		return dst[:l+n+8]
	}
	top, mid := hi/1e8, uint32(hi%1e8) // top < 1845: at most four digits
	n := decimalLen(top)
	binary.LittleEndian.PutUint64(out, eightDigits(uint32(top))>>(8*(8-n)))
	binary.LittleEndian.PutUint64(out[n:], eightDigits(mid))
	binary.LittleEndian.PutUint64(out[n+8:], eightDigits(lo))
	return dst[:l+n+16]
}
