package decode

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
	"net/netip"
	"strconv"
	"time"

	"github.com/cilium/ebpf/btf"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

type opKind uint8

const (
	opInt opKind = iota
	opUint
	opBool
	opFloat
	opBitfield
	opChars
	opIntArray
	opBytes
	opStrList
	opEnum
	opTimestamp
	opErrno
	opRet
	opSignal
	opSyscall
	opUID
	opGID
	opFileFlags
	opFileMode
	opIPAddr
	opProto
	opHumanBytes
	opDuration
	opKernelStack
	opUserStack
	opWideInt  // an integer wider than 64 bits, as decimal text
	opIPFamily // an address whose family a member gives (or its size)
	opUnion    // a tagged union: runs the ops of the alternative the tag selects
)

// op decodes one field (or a field and its companion key).
type op struct {
	kind     opKind
	signed   bool
	topLevel bool
	bitShift uint8
	bitSize  uint8
	off      int
	size     int
	elemSize int
	verOff   int // opIPAddr: offset of the version byte
	key      []byte
	key2     []byte
	enum     []btf.EnumValue
	// ig: the member is spelled X_raw, so the readable value follows
	// Inspektor Gadget's rendering (see special.go).
	ig bool
	// nameFirst: opUID/opGID write the name under key and the number
	// under key2 (IG's X / X_raw), not the other way round.
	nameFirst bool
	flagSet   bool // opEnum: render the enumerators whose bits are set
	// opUserStack: offsets (-1 when absent) and sizes of the members named
	// in userStackFields.
	stackFields [len(userStackFields)]int
	stackSizes  [len(userStackFields)]uint8
	// nkeys is how many keys the op writes (key, and key2 when set).
	nkeys uint8
	// opStrList with a count or size member (counted; offsets -1 when
	// absent).
	counted         bool
	cntOff, cntSize int
	szOff, szSize   int
	// opIPFamily: the family member (famOff -1 when absent); with
	// wideFallback, a family that is no address's renders the integer.
	famOff, famSize int
	wideFallback    bool
	// opUnion: the alternatives' op ranges, and the index past them.
	cases []unionCase
	end   int
}

// unionCase is one alternative of a tagged union: the tag value that
// selects it and its ops, ops[start:end].
type unionCase struct {
	value      int64
	start, end int
}

// Append appends the msgpack encoding of one record to dst: the envelope
// (time, host, source, gadget, seq), then every field. now is the envelope
// time unless the struct has a top-level gadget_timestamp. Fields lying past
// the end of a short record are encoded as zero values. Append may write
// scratch bytes into dst's spare capacity past what it appends (up to
// Room bytes): it stores keys and short strings a word at a time.
func (p *Plan) Append(dst []byte, record []byte, seq uint64, now time.Time) []byte {
	return p.appendEvent(dst, record, seq, now, 0, 0)
}

// AppendSnapshot is Append for a plan compiled with Options.Snapshot: the
// envelope also carries the snapshot's number and its row count.
func (p *Plan) AppendSnapshot(dst []byte, record []byte, seq uint64, now time.Time, snapshot, rows uint64) []byte {
	return p.appendEvent(dst, record, seq, now, snapshot, rows)
}

// eventTime returns the envelope time of record, in Unix nanoseconds: its
// top-level gadget_timestamp converted to wall time, or now when it has
// none (or it is zero).
func (p *Plan) eventTime(record []byte, now time.Time) int64 {
	if p.tsOp >= 0 {
		o := &p.ops[p.tsOp]
		if ns := readUint(record, o.off, o.size); ns != 0 {
			return int64(ns) + p.bootOffset
		}
	}
	return now.UnixNano()
}

func (p *Plan) appendEvent(dst []byte, record []byte, seq uint64, now time.Time, snapshot, rows uint64) []byte {
	if p.steps != nil && len(record) >= p.size && !p.general {
		return p.appendFast(dst, record, seq, p.eventTime(record, now))
	}
	start := len(dst)
	dst = append(dst, p.envHead...)
	envTime := len(dst)
	dst = appendTimestamp(dst, p.eventTime(record, now))
	envTimeEnd := len(dst)
	dst = append(dst, p.envTail...)
	dst = append(dst, p.seqKey...)
	dst = codec.AppendUint(dst, seq)
	if p.snapshot {
		dst = append(dst, p.snapKeys[0]...)
		dst = codec.AppendUint(dst, snapshot)
		dst = append(dst, p.snapKeys[1]...)
		dst = codec.AppendUint(dst, rows)
	}
	if !p.unions {
		for i := range p.ops {
			o := &p.ops[i]
			if i == p.tsOp && !o.ig {
				// The timestamp the envelope's time was made of (unless
				// it was zero): its rendering is the envelope's, already
				// written.
				if ns := readUint(record, o.off, o.size); ns != 0 {
					dst = append(dst, o.key...)
					dst = append(dst, dst[envTime:envTimeEnd]...)
					dst = append(dst, o.key2...)
					dst = codec.AppendUint(dst, ns)
					continue
				}
			}
			dst = o.append(dst, record, p)
		}
		return dst
	}
	dst, keys := p.appendOps(dst, record, 0, len(p.ops))
	keys += len(envelopeKeys)
	if p.snapshot {
		keys += 2
	}
	binary.BigEndian.PutUint32(dst[start+1:], uint32(keys)) // the map32 header
	return dst
}

// appendOps appends ops[from:to] and returns how many keys they wrote; a
// tagged union writes the keys of the alternative its tag selects.
func (p *Plan) appendOps(dst, record []byte, from, to int) ([]byte, int) {
	keys := 0
	for i := from; i < to; {
		o := &p.ops[i]
		if o.kind != opUnion {
			dst = o.append(dst, record, p)
			keys += int(o.nkeys)
			i++
			continue
		}
		tag := int64(readUint(record, o.off, o.size))
		if o.signed {
			tag = readInt(record, o.off, o.size)
		}
		for _, c := range o.cases {
			if c.value == tag {
				var k int
				dst, k = p.appendOps(dst, record, c.start, c.end)
				keys += k
				break
			}
		}
		i = o.end
	}
	return dst, keys
}

func appendTime(dst []byte, bootNS uint64, offset int64) []byte {
	return appendTimestamp(dst, int64(bootNS)+offset)
}

// appendTimestamp appends unixNano as a msgpack string in RFC 3339 (UTC,
// nanoseconds). The str8 header is patched afterwards: the text is at most
// 30 bytes, and formatting straight into dst avoids a copy.
func appendTimestamp(dst []byte, unixNano int64) []byte {
	dst = append(dst, 0xd9, 0)
	start := len(dst)
	dst = appendRFC3339Nano(dst, unixNano)
	dst[start-1] = byte(len(dst) - start)
	return dst
}

func readUint(rec []byte, off, size int) uint64 {
	if off < 0 || size <= 0 || off+size > len(rec) {
		// Short record: what lies past its end reads as zero, but a value
		// cut in half is still read from the bytes present.
		if off < 0 || off >= len(rec) || size <= 0 {
			return 0
		}
		var buf [8]byte
		copy(buf[:], rec[off:])
		return binary.NativeEndian.Uint64(buf[:])
	}
	switch size {
	case 1:
		return uint64(rec[off])
	case 2:
		return uint64(binary.NativeEndian.Uint16(rec[off:]))
	case 4:
		return uint64(binary.NativeEndian.Uint32(rec[off:]))
	case 8:
		return binary.NativeEndian.Uint64(rec[off:])
	}
	var buf [8]byte
	copy(buf[:], rec[off:off+min(size, 8)])
	return binary.NativeEndian.Uint64(buf[:])
}

func readInt(rec []byte, off, size int) int64 {
	u := readUint(rec, off, size)
	if size <= 0 || size >= 8 {
		return int64(u)
	}
	shift := 64 - 8*uint(size)
	return int64(u<<shift) >> shift
}

// clip returns the bytes of [off, off+size) present in rec.
func clip(rec []byte, off, size int) []byte {
	if off < 0 || off >= len(rec) || size <= 0 {
		return nil
	}
	end := off + size
	if end > len(rec) || end < off {
		end = len(rec)
	}
	return rec[off:end]
}

func cstring(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

func (o *op) append(dst, rec []byte, p *Plan) []byte {
	dst = append(dst, o.key...)
	switch o.kind {
	case opInt:
		return codec.AppendInt(dst, readInt(rec, o.off, o.size))
	case opUint:
		return codec.AppendUint(dst, readUint(rec, o.off, o.size))
	case opBool:
		return codec.AppendBool(dst, readUint(rec, o.off, o.size) != 0)
	case opFloat:
		u := readUint(rec, o.off, o.size)
		if o.size == 4 {
			return codec.AppendFloat64(dst, float64(math.Float32frombits(uint32(u))))
		}
		return codec.AppendFloat64(dst, math.Float64frombits(u))
	case opBitfield:
		var buf [8]byte
		copy(buf[:], clip(rec, o.off, 8))
		v := binary.LittleEndian.Uint64(buf[:]) >> o.bitShift
		if o.bitSize < 64 {
			v &= 1<<o.bitSize - 1
		}
		if o.signed && o.bitSize < 64 {
			shift := 64 - uint(o.bitSize)
			return codec.AppendInt(dst, int64(v<<shift)>>shift)
		}
		return codec.AppendUint(dst, v)
	case opChars:
		return codec.AppendStringBytes(dst, cstring(clip(rec, o.off, o.size)))
	case opBytes:
		return codec.AppendBytes(dst, clip(rec, o.off, o.size))
	case opIntArray:
		n := 0
		if o.elemSize > 0 {
			n = o.size / o.elemSize
		}
		dst = codec.AppendArrayHeader(dst, n)
		for i := 0; i < n; i++ {
			off := o.off + i*o.elemSize
			if o.signed {
				dst = codec.AppendInt(dst, readInt(rec, off, o.elemSize))
			} else {
				dst = codec.AppendUint(dst, readUint(rec, off, o.elemSize))
			}
		}
		return dst
	case opStrList:
		if o.counted {
			return appendCountedStrings(dst, rec, o)
		}
		return appendStrList(dst, rec, o)
	case opWideInt:
		var buf [48]byte
		return codec.AppendStringBytes(dst, appendWideInt(buf[:0], clip(rec, o.off, o.size), o.size, o.signed))
	case opIPFamily:
		var buf [48]byte
		return codec.AppendStringBytes(dst, appendIPByFamily(buf[:0], rec, o))
	case opEnum:
		v := readUint(rec, o.off, o.size)
		raw := int64(v)
		if o.signed {
			raw = readInt(rec, o.off, o.size)
			v = uint64(raw)
		}
		switch {
		case o.flagSet:
			dst = appendEnumFlags(dst, o.enum, v)
		case o.ig:
			dst = appendIGEnumName(dst, o.enum, v)
		default:
			dst = appendEnumName(dst, o.enum, v, raw)
		}
		dst = append(dst, o.key2...)
		return codec.AppendInt(dst, raw)
	case opTimestamp:
		ns := readUint(rec, o.off, o.size)
		if ns == 0 {
			dst = codec.AppendString(dst, "")
			dst = append(dst, o.key2...)
			return codec.AppendUint(dst, 0)
		}
		if o.ig {
			// IG rewrites X_raw to wall-clock ns and prints X in the
			// host's zone with nine fraction digits.
			wall := int64(ns) + p.bootOffset
			var buf [40]byte
			dst = codec.AppendStringBytes(dst, time.Unix(0, wall).In(p.loc).AppendFormat(buf[:0], igTimeLayout))
			dst = append(dst, o.key2...)
			return codec.AppendUint(dst, uint64(wall))
		}
		dst = appendTime(dst, ns, p.bootOffset)
		dst = append(dst, o.key2...)
		return codec.AppendUint(dst, ns)
	case opErrno:
		v := readInt(rec, o.off, o.size)
		if !o.signed {
			v = int64(readUint(rec, o.off, o.size))
		}
		e := v
		if e < 0 {
			e = -e
		}
		switch {
		case e == 0:
			dst = codec.AppendString(dst, "")
		case o.ig:
			dst = codec.AppendString(dst, igErrnoName(e))
		default:
			dst = codec.AppendString(dst, errnoName(e))
		}
		dst = append(dst, o.key2...)
		return codec.AppendInt(dst, v)
	case opRet:
		v := readInt(rec, o.off, o.size)
		dst = codec.AppendInt(dst, v)
		dst = append(dst, o.key2...)
		if v < 0 {
			return codec.AppendString(dst, errnoName(-v))
		}
		return codec.AppendString(dst, "")
	case opSignal:
		v := readUint(rec, o.off, o.size)
		if o.ig {
			dst = codec.AppendString(dst, igSignalName(v))
		} else {
			dst = codec.AppendString(dst, signalName(v))
		}
		dst = append(dst, o.key2...)
		return codec.AppendUint(dst, v)
	case opSyscall:
		v := readUint(rec, o.off, o.size)
		if o.ig {
			dst = codec.AppendString(dst, igSyscallName(v))
		} else {
			dst = codec.AppendString(dst, syscallName(v))
		}
		dst = append(dst, o.key2...)
		return codec.AppendUint(dst, v)
	case opUID, opGID:
		v := uint32(readUint(rec, o.off, o.size))
		var name string
		if o.kind == opUID {
			name = p.users.User(v)
		} else {
			name = p.users.Group(v)
		}
		if o.nameFirst {
			dst = appendIDName(dst, o.kind, name, v)
			dst = append(dst, o.key2...)
			return codec.AppendUint(dst, uint64(v))
		}
		dst = codec.AppendUint(dst, uint64(v))
		dst = append(dst, o.key2...)
		return appendIDName(dst, o.kind, name, v)
	case opHumanBytes:
		v := readUint(rec, o.off, o.size)
		var buf [24]byte
		dst = codec.AppendStringBytes(dst, appendHumanBytes(buf[:0], v))
		dst = append(dst, o.key2...)
		return codec.AppendUint(dst, v)
	case opDuration:
		v := readUint(rec, o.off, o.size)
		var buf [32]byte
		dst = codec.AppendStringBytes(dst, appendDuration(buf[:0], time.Duration(v)))
		dst = append(dst, o.key2...)
		return codec.AppendUint(dst, v)
	case opKernelStack:
		id := int32(readUint(rec, o.off, min(o.size, 4)))
		text := ""
		if p.stacks != nil && id >= 0 && o.off+o.size <= len(rec) {
			text = p.stacks.KernelStack(id)
		}
		dst = codec.AppendString(dst, text)
		dst = append(dst, o.key2...)
		return codec.AppendInt(dst, int64(id))
	case opUserStack:
		return codec.AppendString(dst, o.userStack(rec, p))
	case opFileFlags:
		v := readUint(rec, o.off, o.size)
		var buf [192]byte
		dst = codec.AppendStringBytes(dst, appendOpenFlags(buf[:0], v))
		dst = append(dst, o.key2...)
		return codec.AppendUint(dst, v)
	case opFileMode:
		v := readUint(rec, o.off, o.size)
		var buf [16]byte
		dst = codec.AppendStringBytes(dst, appendFileMode(buf[:0], uint32(v)))
		dst = append(dst, o.key2...)
		return codec.AppendUint(dst, v)
	case opIPAddr:
		var buf [48]byte
		return codec.AppendStringBytes(dst, appendIP(buf[:0], rec, o.off, o.verOff))
	case opProto:
		v := readUint(rec, o.off, o.size)
		dst = codec.AppendString(dst, protoName(v))
		dst = append(dst, o.key2...)
		return codec.AppendUint(dst, v)
	}
	return codec.AppendNil(dst)
}

// appendStrList encodes a gadget_strlist array: NUL-separated strings. A
// record that ends inside the array ends the list exactly (the gadget cut
// it there), so empty strings survive; an array wholly inside the record
// has trailing NUL padding, which is not a list of empty strings.
func appendStrList(dst, rec []byte, o *op) []byte {
	b := clip(rec, o.off, o.size)
	clipped := o.off+o.size > len(rec)
	if clipped {
		if len(b) > 0 && b[len(b)-1] == 0 {
			b = b[:len(b)-1]
		}
	} else {
		b = bytes.TrimRight(b, "\x00")
	}
	if len(b) == 0 {
		return codec.AppendArrayHeader(dst, 0)
	}
	dst = codec.AppendArrayHeader(dst, bytes.Count(b, []byte{0})+1)
	for {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return codec.AppendStringBytes(dst, b)
		}
		dst = codec.AppendStringBytes(dst, b[:i])
		b = b[i+1:]
	}
}

func appendEnumName(dst []byte, values []btf.EnumValue, v uint64, raw int64) []byte {
	for i := range values {
		if values[i].Value == v {
			return codec.AppendString(dst, values[i].Name)
		}
	}
	var buf [24]byte
	return codec.AppendStringBytes(dst, strconv.AppendInt(buf[:0], raw, 10))
}

// appendEnumFlags renders an IG flag-set enum (its name ends in _set) as
// the enumerators all of whose bits are set, joined with "|". Like IG, an
// enumerator of value 0 is always listed.
func appendEnumFlags(dst []byte, values []btf.EnumValue, v uint64) []byte {
	var buf [256]byte
	b := buf[:0]
	for i := range values {
		if v&values[i].Value == values[i].Value {
			if len(b) > 0 {
				b = append(b, '|')
			}
			b = append(b, values[i].Name...)
		}
	}
	return codec.AppendStringBytes(dst, b)
}

// appendIGEnumName is IG's rendering: the enumerator's name, or UNKNOWN.
func appendIGEnumName(dst []byte, values []btf.EnumValue, v uint64) []byte {
	for i := range values {
		if values[i].Value == v {
			return codec.AppendString(dst, values[i].Name)
		}
	}
	return codec.AppendString(dst, "UNKNOWN")
}

func appendIDName(dst []byte, kind opKind, name string, id uint32) []byte {
	if name != "" {
		return codec.AppendString(dst, name)
	}
	var buf [16]byte
	b := buf[:0]
	if kind == opUID {
		b = append(b, "uid:"...)
	} else {
		b = append(b, "gid:"...)
	}
	return codec.AppendStringBytes(dst, strconv.AppendUint(b, uint64(id), 10))
}

// userStack reads struct gadget_user_stack's members and asks the resolver.
func (o *op) userStack(rec []byte, p *Plan) string {
	if p.stacks == nil {
		return ""
	}
	field := func(i int) uint64 {
		if o.stackFields[i] < 0 {
			return 0
		}
		return readUint(rec, o.stackFields[i], int(o.stackSizes[i]))
	}
	s := UserStack{StackID: int32(field(0)), Pid: uint32(field(1)), Inode: field(3)}
	if s.Pid == 0 {
		s.Pid = uint32(field(2))
	}
	if s.Inode == 0 {
		s.Inode = field(4)
	}
	if s.StackID < 0 || (s.StackID == 0 && s.Inode == 0) {
		return "" // collection disabled (collect_ustack) or failed
	}
	return p.stacks.UserStack(s)
}

func appendIP(dst, rec []byte, off, verOff int) []byte {
	switch readUint(rec, verOff, 1) {
	case 4:
		var a [4]byte
		copy(a[:], clip(rec, off, 4))
		return netip.AddrFrom4(a).AppendTo(dst)
	case 6:
		var a [16]byte
		copy(a[:], clip(rec, off, 16))
		return netip.AddrFrom16(a).AppendTo(dst)
	}
	return dst
}

// appendCountedStrings encodes a buffer of NUL-separated strings whose
// count (and/or used size) members of the record give: at most count
// strings, from the first size bytes. A count past what the buffer holds
// ends the list where the strings end; a string the buffer cuts off ends
// at the buffer's end.
func appendCountedStrings(dst, rec []byte, o *op) []byte {
	b := clip(rec, o.off, o.size)
	if o.szOff >= 0 {
		if n := readUint(rec, o.szOff, o.szSize); n < uint64(len(b)) {
			b = b[:n]
		}
	}
	n := -1
	if o.cntOff >= 0 {
		c := readInt(rec, o.cntOff, o.cntSize)
		n = int(min(max(c, 0), int64(len(b)+1)))
	}
	if n < 0 {
		// A size without a count: every string in the used bytes.
		b = bytes.TrimSuffix(b, []byte{0})
		if len(b) == 0 {
			return codec.AppendArrayHeader(dst, 0)
		}
		n = bytes.Count(b, []byte{0}) + 1
	}
	// Count the strings present before writing the header.
	have, rest := 0, b
	for have < n && len(rest) > 0 {
		have++
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			break
		}
		rest = rest[i+1:]
	}
	dst = codec.AppendArrayHeader(dst, have)
	for k := 0; k < have; k++ {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			dst = codec.AppendStringBytes(dst, b)
			break
		}
		dst = codec.AppendStringBytes(dst, b[:i])
		b = b[i+1:]
	}
	return dst
}

// appendWideInt renders a little- or big-endian (native) integer of up to
// 16 bytes as decimal text, in full.
func appendWideInt(dst, b []byte, size int, signed bool) []byte {
	var full [16]byte
	copy(full[:], b)
	var lo, hi uint64
	if nativeLittle {
		lo, hi = binary.LittleEndian.Uint64(full[0:]), binary.LittleEndian.Uint64(full[8:])
		if size < 16 && signed && size > 8 && full[size-1]&0x80 != 0 {
			hi |= ^uint64(0) << (8 * uint(size-8))
		}
	} else {
		// Big endian: the value's bytes are the first size bytes.
		var be [16]byte
		copy(be[16-min(size, 16):], b)
		hi, lo = binary.BigEndian.Uint64(be[0:]), binary.BigEndian.Uint64(be[8:])
	}
	neg := signed && hi&(1<<63) != 0
	if neg {
		// Two's complement: negate.
		lo, hi = ^lo, ^hi
		var carry uint64
		lo, carry = bits.Add64(lo, 1, 0)
		hi += carry
	}
	var digits [40]byte
	i := len(digits)
	for {
		var r uint64
		hi, r = bits.Div64(0, hi, 10)
		lo, r = bits.Div64(r, lo, 10)
		i--
		digits[i] = byte('0' + r)
		if hi == 0 && lo == 0 {
			break
		}
	}
	if neg {
		dst = append(dst, '-')
	}
	return append(dst, digits[i:]...)
}

var nativeLittle = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// Address families as the kernel numbers them on every architecture.
const (
	afInet  = 2
	afInet6 = 10
)

// appendIPByFamily renders an address member: by its family member when
// there is one (AF_INET: the first 4 bytes; AF_INET6: 16; other families
// render as ""), else by its size.
func appendIPByFamily(dst, rec []byte, o *op) []byte {
	v6 := o.size >= 16
	if o.famOff >= 0 {
		switch readUint(rec, o.famOff, o.famSize) {
		case afInet:
			v6 = false
		case afInet6:
			if o.size < 16 {
				return dst
			}
			v6 = true
		default:
			if o.wideFallback {
				return appendWideInt(dst, clip(rec, o.off, o.size), o.size, o.signed)
			}
			return dst
		}
	}
	if v6 {
		var a [16]byte
		copy(a[:], clip(rec, o.off, 16))
		return netip.AddrFrom16(a).AppendTo(dst)
	}
	var a [4]byte
	copy(a[:], clip(rec, o.off, 4))
	return netip.AddrFrom4(a).AppendTo(dst)
}
