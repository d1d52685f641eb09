package sources

import (
	"debug/elf"
	"os"
	"reflect"
	"strings"
	"testing"
)

// libcSymbolAddress returns where symbol of the libc this process maps is
// in memory, or skips the test when the process maps no libc.
func libcSymbolAddress(t *testing.T, symbol string) uint64 {
	t.Helper()
	for _, m := range readProcMaps(uint32(os.Getpid())) {
		if !strings.Contains(m.path, "/libc.so") {
			continue
		}
		f, err := elf.Open(m.path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		syms, err := f.DynamicSymbols()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range syms {
			if s.Name != symbol {
				continue
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_LOAD && s.Value >= p.Vaddr && s.Value < p.Vaddr+p.Filesz {
					fileOff := s.Value - p.Vaddr + p.Off
					for _, mm := range readProcMaps(uint32(os.Getpid())) {
						if mm.path == m.path && fileOff >= mm.offset && fileOff < mm.offset+(mm.end-mm.start) {
							return mm.start + fileOff - mm.offset
						}
					}
				}
			}
		}
	}
	t.Skip("this test binary maps no libc (built without cgo)")
	return 0
}

// TestUserFrameSymbolises resolves an address through /proc/self/maps and
// the mapped file's ELF symbols (here libc's dynamic symbols; go test
// strips the test binary's own table), and falls back to build id +
// offset, then to the bare address.
func TestUserFrameSymbolises(t *testing.T) {
	addr := libcSymbolAddress(t, "getpgid")
	r := &stackResolver{}
	if got := r.userFrame(addr+1, buildIDFrame{}, readProcMaps(uint32(os.Getpid()))); got != "getpgid+0x1" {
		t.Errorf("frame = %q, want getpgid+0x1", got)
	}
	exe := uint64(reflect.ValueOf(parseCPUList).Pointer())
	if got := r.userFrame(exe, buildIDFrame{id: "abcd", offset: 0x10, ok: true}, readProcMaps(uint32(os.Getpid()))); !strings.Contains(got, "parseCPUList") && got != "abcd+0x10" {
		t.Errorf("frame in a binary without symbols = %q, want its build id and offset", got)
	}
	if got := r.userFrame(1, buildIDFrame{id: "abcd", offset: 0x10, ok: true}, nil); got != "abcd+0x10" {
		t.Errorf("unmapped frame with a build id = %q, want abcd+0x10", got)
	}
	if got := r.userFrame(0x1234, buildIDFrame{}, nil); got != "0x1234" {
		t.Errorf("unmapped frame = %q, want 0x1234", got)
	}
}

func TestParseCPUList(t *testing.T) {
	got, err := parseCPUList("0-2,5,7-8")
	if err != nil || !reflect.DeepEqual(got, []int{0, 1, 2, 5, 7, 8}) {
		t.Errorf("parseCPUList = %v, %v", got, err)
	}
	for _, bad := range []string{"", "a", "3-1", "1-x"} {
		if _, err := parseCPUList(bad); err == nil {
			t.Errorf("parseCPUList(%q) succeeded", bad)
		}
	}
}
