package wasmbpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// A minimal reader of the WebAssembly binary format: enough to tell a
// wasm-bpf application by its imports (without compiling it) and to find
// the eBPF objects it carries in its data segments. It reads untrusted
// bytes: every length is checked, and it never allocates more than the
// input's size.

// moduleImport is one function import of a module.
type moduleImport struct {
	Module, Name string
}

// binaryInfo is what readBinary finds in a module.
type binaryInfo struct {
	Imports []moduleImport // function imports only
	// Data holds the bytes of every data segment, in order.
	Data [][]byte
}

var errMalformed = errors.New("malformed WebAssembly module")

// wasmReader walks a byte slice; err records the first problem and makes
// every later read return zero values.
type wasmReader struct {
	b   []byte
	err error
}

func (r *wasmReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errMalformed, what)
	}
}

func (r *wasmReader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.fail("unexpected end")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// u32 reads an unsigned LEB128 number of at most 32 bits.
func (r *wasmReader) u32() uint32 {
	var v uint32
	for shift := uint(0); shift < 35; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			if shift == 28 && c > 0x0f {
				r.fail("LEB128 number overflows 32 bits")
				return 0
			}
			return v
		}
	}
	r.fail("LEB128 number too long")
	return 0
}

func (r *wasmReader) bytes(n uint32) []byte {
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(r.b)) {
		r.fail("length past the end")
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *wasmReader) name() string { return string(r.bytes(r.u32())) }

// skipConstExpr skips an initializer expression (up to its end opcode).
// Segment offsets are i32.const, global.get or the extended constant
// instructions; all are skipped by their immediates.
func (r *wasmReader) skipConstExpr() {
	for r.err == nil {
		switch op := r.byte(); op {
		case 0x0b: // end
			return
		case 0x41, 0x23, 0xd2: // i32.const, global.get, ref.func
			r.u32()
		case 0x42: // i64.const: a signed LEB128 of up to 10 bytes
			for i := 0; ; i++ {
				if c := r.byte(); c&0x80 == 0 || r.err != nil {
					break
				}
				if i >= 9 {
					r.fail("LEB128 number too long")
					return
				}
			}
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended constant arithmetic
		case 0xd0: // ref.null t
			r.byte()
		default:
			r.fail(fmt.Sprintf("unsupported opcode %#x in a constant expression", op))
		}
	}
}

var wasmMagic = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// readBinary reads a module's function imports and data segments.
func readBinary(module []byte) (*binaryInfo, error) {
	if !bytes.HasPrefix(module, wasmMagic) {
		return nil, fmt.Errorf("%w: not a WebAssembly 1.0 binary (no \\0asm version 1 header)", errMalformed)
	}
	info := &binaryInfo{}
	r := &wasmReader{b: module[len(wasmMagic):]}
	for len(r.b) > 0 && r.err == nil {
		id := r.byte()
		body := &wasmReader{b: r.bytes(r.u32())}
		if r.err != nil {
			break
		}
		switch id {
		case 2: // imports
			for n := body.u32(); n > 0 && body.err == nil; n-- {
				mod, name := body.name(), body.name()
				switch kind := body.byte(); kind {
				case 0: // function: type index
					body.u32()
					info.Imports = append(info.Imports, moduleImport{Module: mod, Name: name})
				case 1: // table: reftype, limits
					body.byte()
					body.limits()
				case 2: // memory: limits
					body.limits()
				case 3: // global: valtype, mutability
					body.byte()
					body.byte()
				case 4: // tag: attribute, type index
					body.byte()
					body.u32()
				default:
					body.fail(fmt.Sprintf("unknown import kind %d", kind))
				}
			}
		case 11: // data
			for n := body.u32(); n > 0 && body.err == nil; n-- {
				switch flags := body.u32(); flags {
				case 0: // active, memory 0
					body.skipConstExpr()
				case 1: // passive
				case 2: // active, explicit memory
					body.u32()
					body.skipConstExpr()
				default:
					body.fail(fmt.Sprintf("unknown data segment flags %d", flags))
				}
				if seg := body.bytes(body.u32()); body.err == nil {
					info.Data = append(info.Data, seg)
				}
			}
		}
		if body.err != nil {
			return nil, body.err
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return info, nil
}

func (r *wasmReader) limits() {
	switch flags := r.byte(); flags {
	case 0x00, 0x04:
		r.u32()
	case 0x01, 0x03, 0x05, 0x07:
		r.u32()
		r.u32()
	default:
		r.fail(fmt.Sprintf("unknown limits flags %#x", flags))
	}
}

// elfMagic opens a 64-bit little-endian ELF file: what clang -target bpf
// (bpfel) writes.
var elfMagic = []byte{0x7f, 'E', 'L', 'F', 2, 1, 1}

// embeddedObjects finds the eBPF ELF objects lying in data segments: the
// way a wasm-bpf application carries its kernel part (libbpf-bootstrap's
// skeletons embed the object as a byte array). Each is cut to the length
// its header gives (the end of its section headers or of its last
// section, whichever lies further). Objects that are not bytes in a data
// segment (encoded, or read from a file) are not found.
func embeddedObjects(data [][]byte) [][]byte {
	var out [][]byte
	for _, seg := range data {
		for off := 0; off < len(seg); {
			i := bytes.Index(seg[off:], elfMagic)
			if i < 0 {
				break
			}
			start := off + i
			if n := elfLength(seg[start:]); n > 0 {
				out = append(out, seg[start:start+n:start+n])
				off = start + n
				continue
			}
			off = start + 1
		}
	}
	return out
}

// elfLength returns the length of the ELF64 object b starts with, or 0
// when its header does not describe an eBPF relocatable object that fits
// in b.
func elfLength(b []byte) int {
	const ehdrSize, shdrSize = 64, 64
	if len(b) < ehdrSize {
		return 0
	}
	le := binary.LittleEndian
	if le.Uint16(b[16:]) != 1 /* ET_REL */ || le.Uint16(b[18:]) != 247 /* EM_BPF */ {
		return 0
	}
	shoff := le.Uint64(b[40:])
	shentsize, shnum := uint64(le.Uint16(b[58:])), uint64(le.Uint16(b[60:]))
	if shentsize != shdrSize || shnum == 0 || shoff > uint64(len(b)) || shnum*shdrSize > uint64(len(b))-shoff {
		return 0
	}
	end := shoff + shnum*shdrSize
	for i := uint64(0); i < shnum; i++ {
		sh := b[shoff+i*shdrSize:]
		typ, off, size := le.Uint32(sh[4:]), le.Uint64(sh[24:]), le.Uint64(sh[32:])
		if typ == 8 /* SHT_NOBITS */ || typ == 0 {
			continue
		}
		if off > uint64(len(b)) || size > uint64(len(b))-off {
			return 0
		}
		end = max(end, off+size)
	}
	return int(end)
}
