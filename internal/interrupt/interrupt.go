// Package interrupt rewrites a WebAssembly module so that the host can stop
// a call into it cheaply. The module gets a fuel counter (one more mutable
// global) that every function entry and every loop header decrements; each
// Period units the guest calls the host function ImportModule.ImportName
// (one more import), which checks the call's deadline and traps the guest
// (by panicking) once it has passed. Every non-terminating execution runs
// loops or calls without bound, so every call reaches the host within
// Period units of work. A bulk memory or table instruction, which can move
// a whole memory at once, spends BulkCost units.
//
// Two things make this necessary rather than clever. wazero's own
// mechanism (RuntimeConfig.WithCloseOnContextDone) calls back into Go at
// every loop header, which costs a batched filter several times its
// running time (see RATIONALE.md). And native code that never returns to
// Go cannot be preempted: a guest spinning in compiled code would hold up
// the Go garbage collector's stop-the-world, and with it every goroutine,
// including any timer meant to interrupt it. The periodic host call is
// both the deadline check and a preemption point.
//
// Rewrite understands the binary format of WebAssembly 2.0 (the features
// wazero enables by default: multi-value, reference types, bulk memory,
// SIMD, sign extension, non-trapping conversions). For anything else it
// returns an error wrapping ErrUnsupported, and the caller falls back to
// wazero's mechanism. It has no state and is safe for concurrent use.
package interrupt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// The function Rewrite imports: () -> ().
const (
	ImportModule = "sluice"
	ImportName   = "__yield"
)

// Period is the number of function entries and loop iterations between two
// calls to the host.
const Period = 1024

// BulkCost is the fuel a bulk memory or table instruction (memory.copy,
// memory.fill, memory.init, table.copy, table.fill, table.init) spends:
// one such instruction can move a whole memory, so at most Period/BulkCost
// of them run between two calls to the host.
const BulkCost = 64

// ErrUnsupported marks a module Rewrite cannot instrument (a feature or
// encoding it does not know); it says nothing about whether the module is
// valid.
var ErrUnsupported = errors.New("cannot instrument module")

// Section ids of the binary format.
const (
	secCustom  = 0
	secType    = 1
	secImport  = 2
	secGlobal  = 6
	secExport  = 7
	secStart   = 8
	secElement = 9
	secCode    = 10
)

// Stats says what Rewrite instrumented.
type Stats struct {
	Functions, Loops, Bulk int
}

type section struct {
	id   byte
	body []byte
}

// rewriter holds what the rewrite of one module needs.
type rewriter struct {
	importedFuncs uint32 // function imports before ours: our import's index
	yieldType     uint32
	fuel          uint32 // the fuel global's index
	check         []byte // the instructions inserted at entries and loops
	bulkCheck     []byte // the same, spending BulkCost, before bulk instructions
	stats         Stats
}

// fn maps a function index of the original module to the rewritten one:
// our import comes after the original imports, so defined functions move
// up by one.
func (rw *rewriter) fn(i uint32) uint32 {
	if i >= rw.importedFuncs {
		return i + 1
	}
	return i
}

// Rewrite returns module with the fuel counter and the host calls, and what
// it instrumented. DWARF sections (.debug_*) are dropped: the code offsets
// they describe move.
func Rewrite(module []byte) ([]byte, Stats, error) {
	out, stats, err := rewrite(module)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	return out, stats, nil
}

func rewrite(module []byte) ([]byte, Stats, error) {
	if len(module) < 8 || string(module[:4]) != "\x00asm" {
		return nil, Stats{}, errors.New("not a WebAssembly binary")
	}
	if v := binary.LittleEndian.Uint32(module[4:8]); v != 1 {
		return nil, Stats{}, fmt.Errorf("binary format version %d (a component?), want 1", v)
	}
	var sections []section
	r := reader{b: module, off: 8}
	for !r.done() {
		id := r.byte()
		n := r.u32()
		body := r.bytes(int(n))
		if r.err != nil {
			return nil, Stats{}, fmt.Errorf("section at byte %d: %v", r.off, r.err)
		}
		sections = append(sections, section{id, body})
	}

	// First pass: the indices the rewrite needs.
	rw := &rewriter{}
	var types, importedGlobals, definedGlobals uint32
	yieldType := int64(-1)
	for _, s := range sections {
		var err error
		switch s.id {
		case secType:
			types, yieldType, err = scanTypes(s.body)
		case secImport:
			rw.importedFuncs, importedGlobals, err = scanImports(s.body)
		case secGlobal:
			gr := reader{b: s.body}
			definedGlobals = gr.u32()
			err = gr.err
		}
		if err != nil {
			return nil, Stats{}, fmt.Errorf("section %d: %v", s.id, err)
		}
	}
	newType := yieldType < 0
	rw.yieldType = uint32(yieldType)
	if newType {
		rw.yieldType = types
	}
	rw.fuel = importedGlobals + definedGlobals
	rw.check = checkCode(rw.fuel, rw.importedFuncs, 1)
	rw.bulkCheck = checkCode(rw.fuel, rw.importedFuncs, BulkCost)

	// Second pass: write the sections, adding ours in their place.
	out := make([]byte, 0, len(module)+len(module)/8+64)
	out = append(out, module[:8]...)
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	order := func(id byte) int {
		switch id {
		case 12: // data count, between element (9) and code (10)
			return 95
		case 13: // tag, between memory (5) and global (6)
			return 55
		}
		return int(id) * 10
	}
	have := map[byte]bool{}
	for _, s := range sections {
		have[s.id] = true
	}
	missing := []struct {
		id   byte
		body func() []byte
	}{
		{secType, func() []byte { return appendYieldType(binary.AppendUvarint(nil, 1)) }},
		{secImport, func() []byte { return rw.appendImport(binary.AppendUvarint(nil, 1)) }},
		{secGlobal, func() []byte { return appendFuel(binary.AppendUvarint(nil, 1)) }},
	}
	placeMissing := func(before int) {
		for _, m := range missing {
			if !have[m.id] && order(m.id) < before {
				emit(m.id, m.body())
				have[m.id] = true
			}
		}
	}
	for _, s := range sections {
		if s.id != secCustom {
			placeMissing(order(s.id))
		}
		var body []byte
		var err error
		switch s.id {
		case secCustom:
			cr := reader{b: s.body}
			name := cr.name()
			switch {
			case cr.err == nil && strings.HasPrefix(name, ".debug_"):
				continue
			case cr.err == nil && name == "name":
				body = rw.nameSection(s.body, cr.off)
				if body == nil {
					continue // a name section we cannot read is only lost names
				}
			default:
				body = s.body
			}
		case secType:
			body = s.body
			if newType {
				body, err = appendToVector(s.body, appendYieldType)
			}
		case secImport:
			body, err = appendToVector(s.body, rw.appendImport)
		case secGlobal:
			body, err = rw.globals(s.body)
		case secExport:
			body, err = rw.exports(s.body)
		case secStart:
			sr := reader{b: s.body}
			body = binary.AppendUvarint(nil, uint64(rw.fn(sr.u32())))
			err = sr.err
		case secElement:
			body, err = rw.elements(s.body)
		case secCode:
			body, err = rw.code(s.body)
		default:
			body = s.body
		}
		if err != nil {
			return nil, Stats{}, fmt.Errorf("section %d: %v", s.id, err)
		}
		emit(s.id, body)
	}
	placeMissing(1 << 30)
	return out, rw.stats, nil
}

// checkCode is the sequence inserted at function entries and loop headers
// (cost 1) and before bulk instructions (cost BulkCost):
//
//	global.get fuel; i32.const cost; i32.sub; global.set fuel
//	global.get fuel; i32.const 0; i32.le_s
//	if; i32.const Period; global.set fuel; call yield; end
func checkCode(fuel, yield uint32, cost int64) []byte {
	g := binary.AppendUvarint(nil, uint64(fuel))
	b := append([]byte{0x23}, g...)
	b = append(b, 0x41)
	b = appendSLEB(b, cost)
	b = append(b, 0x6b, 0x24)
	b = append(b, g...)
	b = append(b, 0x23)
	b = append(b, g...)
	b = append(b, 0x41, 0x00, 0x4c, 0x04, 0x40, 0x41)
	b = appendSLEB(b, Period)
	b = append(b, 0x24)
	b = append(b, g...)
	b = append(b, 0x10)
	b = binary.AppendUvarint(b, uint64(yield))
	return append(b, 0x0b)
}

// appendSLEB appends v as a signed LEB128 (binary.AppendVarint is
// zig-zag, not LEB128).
func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendYieldType(b []byte) []byte { return append(b, 0x60, 0x00, 0x00) }

func (rw *rewriter) appendImport(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(ImportModule)))
	b = append(b, ImportModule...)
	b = binary.AppendUvarint(b, uint64(len(ImportName)))
	b = append(b, ImportName...)
	b = append(b, 0x00)
	return binary.AppendUvarint(b, uint64(rw.yieldType))
}

// appendFuel appends the fuel global: (mut i32) = Period.
func appendFuel(b []byte) []byte {
	b = append(b, 0x7f, 0x01, 0x41)
	b = appendSLEB(b, Period)
	return append(b, 0x0b)
}

// appendToVector adds one element, written by add, to a vector section.
func appendToVector(body []byte, add func([]byte) []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	if r.err != nil {
		return nil, r.err
	}
	b := binary.AppendUvarint(nil, uint64(n)+1)
	b = append(b, body[r.off:]...)
	return add(b), nil
}

// scanTypes returns the number of types and the index of a () -> () type,
// or -1.
func scanTypes(body []byte) (uint32, int64, error) {
	r := reader{b: body}
	n := r.u32()
	found := int64(-1)
	for i := uint32(0); i < n && r.err == nil; i++ {
		if form := r.byte(); form != 0x60 {
			r.fail("type %d has form %#x, not a function type", i, form)
			break
		}
		params := r.u32()
		for j := uint32(0); j < params && r.err == nil; j++ {
			r.valType()
		}
		results := r.u32()
		for j := uint32(0); j < results && r.err == nil; j++ {
			r.valType()
		}
		if params == 0 && results == 0 && found < 0 {
			found = int64(i)
		}
	}
	return n, found, r.err
}

// scanImports counts the imported functions and globals.
func scanImports(body []byte) (funcs, globals uint32, err error) {
	r := reader{b: body}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.name()
		r.name()
		switch kind := r.byte(); kind {
		case 0x00: // function: type index
			r.u32()
			funcs++
		case 0x01: // table: reftype, limits
			r.valType()
			r.limits()
		case 0x02: // memory: limits
			r.limits()
		case 0x03: // global: valtype, mutability
			r.valType()
			r.byte()
			globals++
		default:
			r.fail("import %d has kind %#x", i, kind)
		}
	}
	return funcs, globals, r.err
}

// globals copies the global section with function references renumbered
// and the fuel global added.
func (rw *rewriter) globals(body []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	b := binary.AppendUvarint(nil, uint64(n)+1)
	for i := uint32(0); i < n && r.err == nil; i++ {
		start := r.off
		r.valType()
		r.byte()
		b = append(b, body[start:r.off]...)
		b = rw.constExpr(&r, b)
	}
	if r.err != nil {
		return nil, r.err
	}
	return appendFuel(b), nil
}

// exports copies the export section with function indices renumbered.
func (rw *rewriter) exports(body []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	b := binary.AppendUvarint(nil, uint64(n))
	for i := uint32(0); i < n && r.err == nil; i++ {
		start := r.off
		r.name()
		kind := r.byte()
		b = append(b, body[start:r.off]...)
		idx := r.u32()
		if kind == 0x00 {
			idx = rw.fn(idx)
		}
		b = binary.AppendUvarint(b, uint64(idx))
	}
	return b, r.err
}

// elements copies the element section with function indices renumbered,
// in all eight segment encodings.
func (rw *rewriter) elements(body []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	b := binary.AppendUvarint(nil, uint64(n))
	for i := uint32(0); i < n && r.err == nil; i++ {
		flags := r.u32()
		b = binary.AppendUvarint(b, uint64(flags))
		if flags > 7 {
			return nil, fmt.Errorf("element segment %d has flags %d", i, flags)
		}
		if flags&0x02 != 0 && flags&0x01 == 0 { // an explicit table index
			b = binary.AppendUvarint(b, uint64(r.u32()))
		}
		if flags&0x01 == 0 { // active: an offset expression
			b = rw.constExpr(&r, b)
		}
		exprs := flags&0x04 != 0
		if flags&0x03 != 0 { // an element kind or reference type
			b = append(b, r.byte())
		}
		count := r.u32()
		b = binary.AppendUvarint(b, uint64(count))
		for j := uint32(0); j < count && r.err == nil; j++ {
			if exprs {
				b = rw.constExpr(&r, b)
			} else {
				b = binary.AppendUvarint(b, uint64(rw.fn(r.u32())))
			}
		}
	}
	return b, r.err
}

// constExpr copies a constant expression, renumbering ref.func.
func (rw *rewriter) constExpr(r *reader, b []byte) []byte {
	for r.err == nil {
		start := r.off
		switch op := r.byte(); op {
		case 0x0b:
			return append(b, op)
		case 0xd2:
			b = append(b, op)
			b = binary.AppendUvarint(b, uint64(rw.fn(r.u32())))
			continue
		case 0x41, 0x42:
			r.s64()
		case 0x43:
			r.bytes(4)
		case 0x44:
			r.bytes(8)
		case 0x23:
			r.u32()
		case 0xd0:
			r.heapType()
		case 0xfd:
			if sub := r.u32(); sub != 12 {
				r.fail("0xfd %d in a constant expression", sub)
			}
			r.bytes(16)
		default:
			r.fail("opcode %#x in a constant expression", op)
		}
		b = append(b, r.b[start:r.off]...)
	}
	return b
}

// nameSection renumbers the function indices of the name section (function,
// local and label names); nil when it cannot be read.
func (rw *rewriter) nameSection(body []byte, off int) []byte {
	r := reader{b: body, off: off}
	b := append([]byte(nil), body[:off]...)
	for !r.done() && r.err == nil {
		id := r.byte()
		size := r.u32()
		sub := r.bytes(int(size))
		if r.err != nil {
			return nil
		}
		if id < 1 || id > 3 { // only function, local and label names hold function indices
			b = append(b, id)
			b = binary.AppendUvarint(b, uint64(size))
			b = append(b, sub...)
			continue
		}
		sr := reader{b: sub}
		n := sr.u32()
		nb := binary.AppendUvarint(nil, uint64(n))
		for i := uint32(0); i < n && sr.err == nil; i++ {
			nb = binary.AppendUvarint(nb, uint64(rw.fn(sr.u32())))
			start := sr.off
			if id == 1 {
				sr.name()
			} else { // an indirect name map
				m := sr.u32()
				for j := uint32(0); j < m && sr.err == nil; j++ {
					sr.u32()
					sr.name()
				}
			}
			nb = append(nb, sub[start:sr.off]...)
		}
		if sr.err != nil || !sr.done() {
			return nil
		}
		b = append(b, id)
		b = binary.AppendUvarint(b, uint64(len(nb)))
		b = append(b, nb...)
	}
	if r.err != nil {
		return nil
	}
	return b
}

// code rewrites every function body of the code section.
func (rw *rewriter) code(body []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	out := binary.AppendUvarint(make([]byte, 0, len(body)+len(body)/8), uint64(n))
	var fn []byte
	for i := uint32(0); i < n; i++ {
		size := r.u32()
		code := r.bytes(int(size))
		if r.err != nil {
			return nil, fmt.Errorf("function %d: %v", i, r.err)
		}
		var err error
		if fn, err = rw.function(fn[:0], code); err != nil {
			return nil, fmt.Errorf("function %d: %v", i, err)
		}
		rw.stats.Functions++
		out = binary.AppendUvarint(out, uint64(len(fn)))
		out = append(out, fn...)
	}
	if !r.done() {
		return nil, fmt.Errorf("%d bytes after the last function", len(body)-r.off)
	}
	return out, nil
}

// function copies one function body into out with the check at its entry
// and after the block type of every loop, and calls renumbered.
func (rw *rewriter) function(out, code []byte) ([]byte, error) {
	r := reader{b: code}
	groups := r.u32()
	for i := uint32(0); i < groups && r.err == nil; i++ {
		r.u32()
		r.valType()
	}
	if r.err != nil {
		return nil, fmt.Errorf("locals: %v", r.err)
	}
	out = append(out, code[:r.off]...)
	out = append(out, rw.check...)
	copied := r.off
	depth := 1 // the body is a block closed by its last end
	for depth > 0 {
		if r.done() {
			return nil, errors.New("body ends before its final end")
		}
		at := r.off
		op := r.byte()
		switch op {
		case 0x02, 0x04: // block, if
			r.blockType()
			depth++
		case 0x03: // loop
			r.blockType()
			depth++
			if r.err == nil {
				out = append(out, code[copied:r.off]...)
				out = append(out, rw.check...)
				copied = r.off
				rw.stats.Loops++
			}
		case 0x0b: // end
			depth--
		case 0x10, 0xd2: // call, ref.func: a function index to renumber
			idx := r.u32()
			if r.err == nil {
				out = append(out, code[copied:at]...)
				out = append(out, op)
				out = binary.AppendUvarint(out, uint64(rw.fn(idx)))
				copied = r.off
			}
		case 0xfc:
			sub := r.u32()
			r.miscImmediates(sub)
			switch sub {
			case 8, 10, 11, 12, 14, 17: // memory.init/copy/fill, table.init/copy/fill
				if r.err == nil {
					out = append(out, code[copied:at]...)
					out = append(out, rw.bulkCheck...)
					copied = at
					rw.stats.Bulk++
				}
			}
		default:
			r.immediates(op)
		}
		if r.err != nil {
			return nil, fmt.Errorf("instruction at byte %d: %v", at, r.err)
		}
	}
	if !r.done() {
		return nil, fmt.Errorf("%d bytes after the final end", len(code)-r.off)
	}
	return append(out, code[copied:]...), nil
}

// immediates skips the immediates of op (block, loop, if, end, call and
// ref.func are the caller's).
func (r *reader) immediates(op byte) {
	switch {
	case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0f || op == 0x1a || op == 0x1b:
		// unreachable, nop, else, return, drop, select
	case op == 0x0c || op == 0x0d: // br, br_if
		r.u32()
	case op == 0x0e: // br_table
		n := r.u32()
		for i := uint32(0); i <= n && r.err == nil; i++ {
			r.u32()
		}
	case op == 0x11: // call_indirect: type, table
		r.u32()
		r.u32()
	case op == 0x1c: // select t*
		n := r.u32()
		for i := uint32(0); i < n && r.err == nil; i++ {
			r.valType()
		}
	case op >= 0x20 && op <= 0x26: // local.get/set/tee, global.get/set, table.get/set
		r.u32()
	case op >= 0x28 && op <= 0x3e: // loads and stores
		r.memarg()
	case op == 0x3f || op == 0x40: // memory.size, memory.grow
		r.u32()
	case op == 0x41 || op == 0x42: // i32.const, i64.const
		r.s64()
	case op == 0x43:
		r.bytes(4)
	case op == 0x44:
		r.bytes(8)
	case op >= 0x45 && op <= 0xc4: // numeric, sign extension
	case op == 0xd0: // ref.null heaptype
		r.heapType()
	case op == 0xd1: // ref.is_null
	case op == 0xfd:
		r.simdOp()
	default:
		r.fail("opcode %#x is not part of WebAssembly 2.0", op)
	}
}

func (r *reader) miscImmediates(sub uint32) {
	switch {
	case sub <= 7: // saturating truncations
	case sub == 8: // memory.init data, memory
		r.u32()
		r.u32()
	case sub == 9, sub == 11, sub == 13, sub == 15, sub == 16, sub == 17:
		// data.drop, memory.fill, elem.drop, table.grow, table.size, table.fill
		r.u32()
	case sub == 10, sub == 12, sub == 14: // memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	default:
		r.fail("0xfc %d is not part of WebAssembly 2.0", sub)
	}
}

func (r *reader) simdOp() {
	switch sub := r.u32(); {
	case sub <= 11, sub == 92, sub == 93: // loads, stores, load zero
		r.memarg()
	case sub == 12, sub == 13: // v128.const, i8x16.shuffle
		r.bytes(16)
	case sub >= 21 && sub <= 34: // extract and replace lane
		r.byte()
	case sub >= 84 && sub <= 91: // load and store lane
		r.memarg()
		r.byte()
	case sub <= 255: // the rest take no immediates
	default:
		r.fail("0xfd %d is not part of WebAssembly 2.0", sub)
	}
}

// reader decodes the binary format. The first error sticks; reads after
// it return zero values.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
	r.off = len(r.b)
}

func (r *reader) done() bool { return r.off >= len(r.b) }

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("unexpected end")
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.fail("%d bytes wanted, %d left", n, len(r.b)-r.off)
		return nil
	}
	b := r.b[r.off : r.off+n]
	r.off += n
	return b
}

// uleb reads an unsigned LEB128 of at most bits bits.
func (r *reader) uleb(bits uint) uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= bits+7 || shift >= 70 {
			r.fail("LEB128 longer than %d bits", bits)
			return 0
		}
		c := r.byte()
		if r.err != nil {
			return 0
		}
		if shift < 64 {
			v |= uint64(c&0x7f) << shift
		}
		if c&0x80 == 0 {
			if bits < 64 && v>>bits != 0 {
				r.fail("LEB128 value overflows %d bits", bits)
			}
			return v
		}
	}
}

func (r *reader) u32() uint32 { return uint32(r.uleb(32)) }

// s64 skips a signed LEB128 of at most 64 bits (constants are copied, not
// interpreted).
func (r *reader) s64() {
	for i := 0; ; i++ {
		if i == 10 {
			r.fail("signed LEB128 longer than 64 bits")
			return
		}
		c := r.byte()
		if r.err != nil || c&0x80 == 0 {
			return
		}
	}
}

func (r *reader) name() string {
	n := r.u32()
	return string(r.bytes(int(n)))
}

func (r *reader) limits() {
	switch flags := r.byte(); flags {
	case 0x00:
		r.u32()
	case 0x01:
		r.u32()
		r.u32()
	default:
		r.fail("limits flags %#x are not part of WebAssembly 2.0", flags)
	}
}

func (r *reader) memarg() {
	if align := r.u32(); align&0x40 != 0 {
		r.fail("memory index in a memarg (multi-memory) is not part of WebAssembly 2.0")
	}
	r.u32()
}

// valType reads a value type: a number, vector or reference type byte.
func (r *reader) valType() {
	switch t := r.byte(); t {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
	default:
		r.fail("value type %#x is not part of WebAssembly 2.0", t)
	}
}

// heapType reads the heap type of ref.null: funcref or externref.
func (r *reader) heapType() {
	switch t := r.byte(); t {
	case 0x70, 0x6f:
	default:
		r.fail("heap type %#x is not part of WebAssembly 2.0", t)
	}
}

// blockType reads a block type: empty, one value type, or a type index
// (a non-negative signed LEB128 of up to 33 bits).
func (r *reader) blockType() {
	if r.err != nil || r.off >= len(r.b) {
		r.fail("unexpected end")
		return
	}
	switch c := r.b[r.off]; c {
	case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		r.off++
		return
	}
	if c := r.b[r.off]; c&0x80 == 0 && c&0x40 != 0 {
		r.fail("block type %#x", c)
		return
	}
	r.s64()
}
