package syscalls

import (
	"runtime"
	"sync"
)

//go:generate go run gen.go

// Table is the syscall table of one architecture. The zero value knows no
// syscall.
type Table struct {
	arch   string
	names  []string
	byName func() map[string]int
}

func newTable(arch string, names []string) *Table {
	t := &Table{arch: arch, names: names}
	t.byName = sync.OnceValue(func() map[string]int {
		m := make(map[string]int, len(names))
		for nr, n := range names {
			if n != "" {
				m[n] = nr
			}
		}
		return m
	})
	return t
}

var (
	// X86_64 is the table of amd64 (x86_64) Linux.
	X86_64 = newTable("x86_64", x86_64Names[:])
	// AArch64 is the table of arm64 (aarch64) Linux.
	AArch64 = newTable("aarch64", aarch64Names[:])
	// unknown is the table of an architecture sluice has none for.
	unknown = newTable("", nil)
)

// Host returns the table of the architecture the process runs on; on one
// sluice has no table for, a table that knows no syscall (Arch "").
func Host() *Table {
	switch runtime.GOARCH {
	case "amd64":
		return X86_64
	case "arm64":
		return AArch64
	}
	return unknown
}

// Arch returns the kernel's name of the table's architecture ("x86_64",
// "aarch64"), "" for the empty table.
func (t *Table) Arch() string { return t.arch }

// Name returns the name of syscall nr, false when the number is unused.
func (t *Table) Name(nr int) (string, bool) {
	if nr < 0 || nr >= len(t.names) || t.names[nr] == "" {
		return "", false
	}
	return t.names[nr], true
}

// tracepointNames are the syscalls whose tracepoint (the name of the
// kernel's SYSCALL_DEFINE) differs from the uapi name.
var tracepointNames = map[string]string{
	"newstat":    "stat",
	"newlstat":   "lstat",
	"newfstat":   "fstat",
	"newuname":   "uname",
	"sendfile64": "sendfile",
	"umount":     "umount2",
}

// Number returns the number of the syscall called name (without a sys_
// prefix; the uapi name or the tracepoint's), false when there is none.
func (t *Table) Number(name string) (int, bool) {
	m := t.byName()
	if nr, ok := m[name]; ok {
		return nr, true
	}
	if alias, ok := tracepointNames[name]; ok {
		nr, ok := m[alias]
		return nr, ok
	}
	return 0, false
}
