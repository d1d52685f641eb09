// Package kallsyms resolves kernel symbols from /proc/kallsyms: a name to
// its address, and an address to the symbol it falls in (name and offset,
// as the kernel's %pS prints them).
//
// Load reads the file once per process, on first use, and keeps a compact
// table (one string of names and two sorted indexes, about 40 bytes a
// symbol); a module loaded afterwards is not seen. A Table is read-only and
// safe for concurrent use. Errors are conclusive: ErrHidden when the
// kernel hides addresses from this process (kptr_restrict, no
// CAP_SYSLOG), otherwise the read or parse error.
package kallsyms

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Path is the file Load reads.
const Path = "/proc/kallsyms"

// ErrHidden reports that /proc/kallsyms shows every address as zero: the
// kernel hides them from this process (kernel.kptr_restrict, or missing
// CAP_SYSLOG).
var ErrHidden = errors.New("the kernel hides symbol addresses from this process (kernel.kptr_restrict, CAP_SYSLOG)")

// Table is a parsed /proc/kallsyms.
type Table struct {
	names  string   // every name, back to back
	syms   []symbol // in file order
	byAddr []int32  // indexes into syms, by address (file order among equals)
	byName []int32  // indexes into syms, by name (file order among equals)
}

type symbol struct {
	addr     uint64
	off, len uint32 // the name in names
}

func (t *Table) name(i int32) string {
	s := t.syms[i]
	return t.names[s.off : s.off+s.len]
}

// Len returns the number of symbols.
func (t *Table) Len() int { return len(t.syms) }

// Address returns the address of the symbol called name; of the first one
// the file lists when several share the name (static functions of
// different files or modules).
func (t *Table) Address(name string) (uint64, bool) {
	i, ok := slices.BinarySearchFunc(t.byName, name, func(j int32, name string) int { return strings.Compare(t.name(j), name) })
	if !ok {
		return 0, false
	}
	return t.syms[t.byName[i]].addr, true
}

// Symbol returns the symbol addr falls in: the one with the greatest
// address not above addr (the first listed among several at that address),
// and addr's offset from it. Addresses below the first symbol or above the
// last are not found: nothing says where the last symbol ends.
func (t *Table) Symbol(addr uint64) (name string, offset uint64, ok bool) {
	if len(t.byAddr) == 0 {
		return "", 0, false
	}
	first, last := t.syms[t.byAddr[0]].addr, t.syms[t.byAddr[len(t.byAddr)-1]].addr
	if addr < first || addr > last {
		return "", 0, false
	}
	// The first index whose address is above addr; the symbol is the run
	// of equal addresses before it, whose first member wins.
	i, _ := slices.BinarySearchFunc(t.byAddr, addr+1, func(j int32, a uint64) int {
		if t.syms[j].addr < a {
			return -1
		}
		if t.syms[j].addr > a {
			return 1
		}
		return 0
	})
	base := t.syms[t.byAddr[i-1]].addr
	j := i - 1
	for j > 0 && t.syms[t.byAddr[j-1]].addr == base {
		j--
	}
	return t.name(t.byAddr[j]), addr - base, true
}

// Parse reads a kallsyms listing: "ADDRESS TYPE NAME [MODULE]" per line.
func Parse(r io.Reader) (*Table, error) {
	t := &Table{}
	var names strings.Builder
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	nonzero := false
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		addrField, rest, ok := bytes.Cut(b, []byte{' '})
		if !ok {
			return nil, fmt.Errorf("kallsyms line %d: %q is not ADDRESS TYPE NAME", line, b)
		}
		_, rest, ok = bytes.Cut(rest, []byte{' '})
		if !ok {
			return nil, fmt.Errorf("kallsyms line %d: %q is not ADDRESS TYPE NAME", line, b)
		}
		name, _, _ := bytes.Cut(rest, []byte{'\t'}) // "\t[module]" follows module symbols
		name = bytes.TrimSpace(name)
		addr, err := strconv.ParseUint(string(addrField), 16, 64)
		if err != nil || len(name) == 0 {
			return nil, fmt.Errorf("kallsyms line %d: %q is not ADDRESS TYPE NAME", line, b)
		}
		nonzero = nonzero || addr != 0
		if names.Len()+len(name) > 1<<32-1 || len(t.syms) >= 1<<31-1 {
			return nil, errors.New("kallsyms: too many symbols")
		}
		t.syms = append(t.syms, symbol{addr: addr, off: uint32(names.Len()), len: uint32(len(name))})
		names.Write(name)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read kallsyms: %w", err)
	}
	if len(t.syms) > 0 && !nonzero {
		return nil, ErrHidden
	}
	t.names = names.String()
	t.byAddr = make([]int32, len(t.syms))
	t.byName = make([]int32, len(t.syms))
	for i := range t.syms {
		t.byAddr[i], t.byName[i] = int32(i), int32(i)
	}
	// Ties go to file order (the index), which makes the faster unstable
	// sort stable.
	slices.SortFunc(t.byAddr, func(a, b int32) int {
		return cmp.Or(cmp.Compare(t.syms[a].addr, t.syms[b].addr), cmp.Compare(a, b))
	})
	slices.SortFunc(t.byName, func(a, b int32) int {
		return cmp.Or(strings.Compare(t.name(a), t.name(b)), cmp.Compare(a, b))
	})
	return t, nil
}

var load = sync.OnceValues(func() (*Table, error) {
	f, err := os.Open(Path)
	if err != nil {
		return nil, fmt.Errorf("read kernel symbols: %w", err)
	}
	defer f.Close()
	t, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("read kernel symbols from %s: %w", Path, err)
	}
	return t, nil
})

// Load returns the running kernel's symbols, read from Path on the first
// call; later calls return the same table (or the same error).
func Load() (*Table, error) { return load() }
