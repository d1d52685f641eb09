// Package interrupt rewrites a WebAssembly module so that the host can stop
// a call into it cheaply. The module gets a fuel counter (one more mutable
// global) that every loop header and every call site decrements; each
// Period units the guest calls the host function ImportModule.ImportName
// (one more import), which checks the call's deadline and traps the guest
// (by panicking) once it has passed. Every non-terminating execution runs
// loops or calls without bound, so every call reaches the host within
// Period units of work. A bulk memory or table instruction, which can move
// a whole memory at once, spends one unit plus one per BulkBytes bytes (or
// table elements) it moves.
//
// Where the checks go is chosen for the code wazero's compiler makes of
// them: its register allocator keeps a function's values in memory past
// any call, down to the loops that follow, so the host call must stay away
// from hot code. Calls are checked at the call site, right before a call
// that spills registers anyway, rather than at every function's entry
// (which made a loop after it reload its values on every iteration). A
// loop is wrapped in a second one that holds the host call,
//
//	loop                   ;; outer: entered once, and again after each yield
//	  if fuel <= 0: fuel = Period; call yield
//	  loop                 ;; the original loop
//	    fuel -= 1; br_if outer when fuel <= 0
//	    body
//
// so the loop itself only decrements and branches. A bulk instruction only
// spends its fuel; the next check yields. Loops that take parameters (a
// type-index block type) keep a plain check, with the call inside.
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

// BulkBytes is how many bytes (or table elements) a bulk memory or table
// instruction (memory.copy, memory.fill, memory.init, table.copy,
// table.fill, table.init) moves per unit of fuel, beyond the unit every
// such instruction spends: one instruction can move a whole memory, so it
// pays for what it moves, while the small copies compilers emit for
// structs and strings cost about what a loop iteration does.
const BulkBytes = 1 << bulkShift

const bulkShift = 8

// ErrUnsupported marks a module Rewrite cannot instrument (a feature or
// encoding it does not know); it says nothing about whether the module is
// valid.
var ErrUnsupported = errors.New("cannot instrument module")

// Section ids of the binary format.
const (
	secCustom  = 0
	secType    = 1
	secImport  = 2
	secFunc    = 3
	secGlobal  = 6
	secExport  = 7
	secStart   = 8
	secElement = 9
	secCode    = 10
)

// Stats says what Rewrite instrumented: the functions it read, the call
// sites, the loops (Peeled of them wrapped so that the host call stays out
// of the loop) and the bulk instructions.
type Stats struct {
	Functions, Calls, Loops, Peeled, Bulk int
}

type section struct {
	id   byte
	body []byte
}

// rewriter holds what the rewrite of one module needs.
type rewriter struct {
	importedFuncs uint32 // function imports before ours: our import's index
	yieldType     uint32
	fuel          uint32   // the fuel global's index
	typeParams    []uint32 // the number of parameters of each type
	funcTypes     []uint32 // the type of each defined function
	check         []byte   // spend one unit, yield when the fuel is out
	yieldIfOut    []byte   // an outer loop's head: yield when the fuel is out
	spend         []byte   // a peeled loop's head: spend one unit, br_if 1 when out
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
			types, yieldType, rw.typeParams, err = scanTypes(s.body)
		case secFunc:
			rw.funcTypes, err = scanFunctions(s.body)
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
	rw.check = checkCode(rw.fuel, rw.importedFuncs)
	rw.yieldIfOut = yieldCode(rw.fuel, rw.importedFuncs)
	rw.spend = spendCode(rw.fuel)

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

// checkCode spends one unit of fuel and yields when it is out: before a
// call, and at the head of a loop that cannot be peeled.
//
//	global.get fuel; i32.const 1; i32.sub; global.set fuel
//	global.get fuel; i32.const 0; i32.le_s
//	if; i32.const Period; global.set fuel; call yield; end
func checkCode(fuel, yield uint32) []byte {
	g := binary.AppendUvarint(nil, uint64(fuel))
	b := append([]byte{0x23}, g...)
	b = append(b, 0x41, 0x01, 0x6b, 0x24)
	b = append(b, g...)
	return append(b, yieldCode(fuel, yield)...)
}

// yieldCode yields when the fuel is out, spending nothing: the head of
// the outer loop of a peeled loop.
//
//	global.get fuel; i32.const 0; i32.le_s
//	if; i32.const Period; global.set fuel; call yield; end
func yieldCode(fuel, yield uint32) []byte {
	g := binary.AppendUvarint(nil, uint64(fuel))
	b := append([]byte{0x23}, g...)
	b = append(b, 0x41, 0x00, 0x4c, 0x04, 0x40, 0x41)
	b = appendSLEB(b, Period)
	b = append(b, 0x24)
	b = append(b, g...)
	b = append(b, 0x10)
	b = binary.AppendUvarint(b, uint64(yield))
	return append(b, 0x0b)
}

// spendCode spends one unit and leaves for the outer loop (label 1) when
// the fuel is out: the head of a peeled loop.
//
//	global.get fuel; i32.const 1; i32.sub; global.set fuel
//	global.get fuel; i32.const 0; i32.le_s; br_if 1
func spendCode(fuel uint32) []byte {
	g := binary.AppendUvarint(nil, uint64(fuel))
	b := append([]byte{0x23}, g...)
	b = append(b, 0x41, 0x01, 0x6b, 0x24)
	b = append(b, g...)
	b = append(b, 0x23)
	b = append(b, g...)
	return append(b, 0x41, 0x00, 0x4c, 0x0d, 0x01)
}

// appendBulk appends what precedes a bulk instruction: it saves the
// instruction's count operand (an i32 on top of the stack) in local
// scratch and spends one unit plus count >> bulkShift. It does not yield:
// the next check does.
//
//	local.tee scratch
//	global.get fuel; local.get scratch; i32.const bulkShift; i32.shr_u; i32.sub
//	i32.const 1; i32.sub; global.set fuel
func appendBulk(dst []byte, fuel, scratch uint32) []byte {
	dst = append(dst, 0x22)
	dst = binary.AppendUvarint(dst, uint64(scratch))
	dst = append(dst, 0x23)
	dst = binary.AppendUvarint(dst, uint64(fuel))
	dst = append(dst, 0x20)
	dst = binary.AppendUvarint(dst, uint64(scratch))
	dst = append(dst, 0x41, bulkShift, 0x76, 0x6b, 0x41, 0x01, 0x6b, 0x24)
	return binary.AppendUvarint(dst, uint64(fuel))
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

// scanTypes returns the number of types, the index of a () -> () type (or
// -1) and the number of parameters of each type.
func scanTypes(body []byte) (uint32, int64, []uint32, error) {
	r := reader{b: body}
	n := r.u32()
	found := int64(-1)
	var nparams []uint32
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
		nparams = append(nparams, params)
	}
	return n, found, nparams, r.err
}

// scanFunctions returns the type index of each defined function.
func scanFunctions(body []byte) ([]uint32, error) {
	r := reader{b: body}
	n := r.u32()
	var types []uint32
	for i := uint32(0); i < n && r.err == nil; i++ {
		types = append(types, r.u32())
	}
	return types, r.err
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
		if i >= uint32(len(rw.funcTypes)) || rw.funcTypes[i] >= uint32(len(rw.typeParams)) {
			return nil, fmt.Errorf("function %d: no type in the function and type sections", i)
		}
		var err error
		if fn, err = rw.function(fn[:0], code, rw.typeParams[rw.funcTypes[i]]); err != nil {
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

// maxLocals is wazero's limit on the locals of a function.
const maxLocals = 50000

// function copies the body of a function with nparams parameters into
// out, instrumented: a check before every call, a peeled (or plain) check
// at every loop, fuel spent before every bulk instruction, branch labels
// renumbered around the outer loops, calls renumbered.
func (rw *rewriter) function(out, code []byte, nparams uint32) ([]byte, error) {
	r := reader{b: code}
	groups := r.u32()
	groupsEnd := r.off
	locals := uint64(nparams)
	for i := uint32(0); i < groups && r.err == nil; i++ {
		locals += uint64(r.u32())
		r.valType()
	}
	if r.err != nil {
		return nil, fmt.Errorf("locals: %v", r.err)
	}
	if locals >= maxLocals { // one more may be ours
		return nil, fmt.Errorf("%d locals", locals)
	}
	localsEnd := r.off
	scratch := uint32(locals) // ours, declared if a bulk instruction needs it

	// peeled[i] says whether open block i (0: the body) is a loop wrapped
	// in an outer one, which adds a label outside it.
	peeled := []bool{false}
	// label renumbers a branch's label for the outer loops it crosses.
	label := func(l uint32) (uint32, error) {
		if uint64(l) >= uint64(len(peeled)) {
			return 0, fmt.Errorf("branch to label %d at depth %d", l, len(peeled))
		}
		n := l
		for _, p := range peeled[len(peeled)-int(l):] {
			if p {
				n++
			}
		}
		return n, nil
	}
	var body []byte
	copied := r.off
	bulk := false
	for len(peeled) > 0 {
		if r.done() {
			return nil, errors.New("body ends before its final end")
		}
		at := r.off
		op := r.byte()
		switch op {
		case 0x02, 0x04: // block, if
			r.blockType()
			peeled = append(peeled, false)
		case 0x03: // loop
			r.blockType()
			if r.err != nil {
				break
			}
			// A loop without parameters (an empty or a one-value block
			// type, not a type index) can be peeled: a branch to the
			// outer loop carries no values.
			var peel bool
			switch code[at+1] {
			case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
				peel = true
			}
			body = append(body, code[copied:r.off]...)
			if peel {
				body = append(body, rw.yieldIfOut...)
				body = append(body, code[at:r.off]...)
				body = append(body, rw.spend...)
				rw.stats.Peeled++
			} else {
				body = append(body, rw.check...)
			}
			copied = r.off
			peeled = append(peeled, peel)
			rw.stats.Loops++
		case 0x0b: // end
			if peeled[len(peeled)-1] {
				body = append(body, code[copied:r.off]...)
				body = append(body, 0x0b) // the outer loop's
				copied = r.off
			}
			peeled = peeled[:len(peeled)-1]
		case 0x0c, 0x0d: // br, br_if
			l := r.u32()
			if r.err != nil {
				break
			}
			n, err := label(l)
			if err != nil {
				return nil, fmt.Errorf("instruction at byte %d: %v", at, err)
			}
			if n != l {
				body = append(body, code[copied:at]...)
				body = append(body, op)
				body = binary.AppendUvarint(body, uint64(n))
				copied = r.off
			}
		case 0x0e: // br_table
			count := r.u32()
			if r.err == nil && uint64(count) >= uint64(len(code)) {
				r.fail("br_table of %d labels in %d bytes", count, len(code))
			}
			if r.err != nil {
				break
			}
			start := len(body)
			body = append(body, code[copied:at]...)
			body = append(body, op)
			body = binary.AppendUvarint(body, uint64(count))
			changed := false
			for i := uint32(0); i <= count && r.err == nil; i++ {
				l := r.u32()
				if r.err != nil {
					break
				}
				n, err := label(l)
				if err != nil {
					return nil, fmt.Errorf("instruction at byte %d: %v", at, err)
				}
				changed = changed || n != l
				body = binary.AppendUvarint(body, uint64(n))
			}
			if changed {
				copied = r.off
			} else {
				body = body[:start]
			}
		case 0x10, 0xd2: // call, ref.func: a function index to renumber
			idx := r.u32()
			if r.err == nil {
				body = append(body, code[copied:at]...)
				if op == 0x10 {
					body = append(body, rw.check...)
					rw.stats.Calls++
				}
				body = append(body, op)
				body = binary.AppendUvarint(body, uint64(rw.fn(idx)))
				copied = r.off
			}
		case 0x11: // call_indirect
			body = append(body, code[copied:at]...)
			body = append(body, rw.check...)
			copied = at
			rw.stats.Calls++
			r.immediates(op)
		case 0xfc:
			sub := r.u32()
			r.miscImmediates(sub)
			switch sub {
			case 8, 10, 11, 12, 14, 17: // memory.init/copy/fill, table.init/copy/fill
				if r.err == nil {
					body = append(body, code[copied:at]...)
					body = appendBulk(body, rw.fuel, scratch)
					copied = at
					bulk = true
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
	body = append(body, code[copied:]...)

	// The locals, with the scratch i32 last so that no index moves.
	if bulk {
		out = binary.AppendUvarint(out, uint64(groups)+1)
		out = append(out, code[groupsEnd:localsEnd]...)
		out = append(out, 0x01, 0x7f)
	} else {
		out = append(out, code[:localsEnd]...)
	}
	return append(out, body...), nil
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
