package kallsyms

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/testutil"
)

const sample = `ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81000100 t helper
ffffffff81000200 T do_exit
ffffffffc0001000 t helper	[mymod]
ffffffffc0001080 d mymod_data	[mymod]
`

func TestParse(t *testing.T) {
	tab, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if tab.Len() != 6 {
		t.Errorf("Len = %d, want 6", tab.Len())
	}
	for _, tc := range []struct {
		name string
		addr uint64
		ok   bool
	}{
		{"_text", 0xffffffff81000000, true},
		{"do_exit", 0xffffffff81000200, true},
		{"helper", 0xffffffff81000100, true}, // the first of two
		{"mymod_data", 0xffffffffc0001080, true},
		{"missing", 0, false},
	} {
		addr, ok := tab.Address(tc.name)
		if addr != tc.addr || ok != tc.ok {
			t.Errorf("Address(%q) = %#x, %v; want %#x, %v", tc.name, addr, ok, tc.addr, tc.ok)
		}
	}
	for _, tc := range []struct {
		addr   uint64
		name   string
		offset uint64
		ok     bool
	}{
		{0xffffffff81000000, "_stext", 0, true}, // the first at that address
		{0xffffffff810000ff, "_stext", 0xff, true},
		{0xffffffff81000100, "helper", 0, true},
		{0xffffffff81000234, "do_exit", 0x34, true},
		{0xffffffffc0001004, "helper", 4, true},
		{0xffffffffc0001080, "mymod_data", 0, true},
		{0xffffffffc0001081, "", 0, false}, // past the last symbol
		{0x400000, "", 0, false},           // a user address
	} {
		name, off, ok := tab.Symbol(tc.addr)
		if name != tc.name || off != tc.offset || ok != tc.ok {
			t.Errorf("Symbol(%#x) = %q+%#x, %v; want %q+%#x, %v", tc.addr, name, off, ok, tc.name, tc.offset, tc.ok)
		}
	}
}

func TestParseErrors(t *testing.T) {
	if _, err := Parse(strings.NewReader("0000000000000000 T a\n0000000000000000 T b\n")); !errors.Is(err, ErrHidden) {
		t.Errorf("all-zero addresses: err = %v, want ErrHidden", err)
	}
	for _, bad := range []string{"nothex T a\n", "ffff\n", "ffff T\n"} {
		if _, err := Parse(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("Parse(%q) = %v, want an error naming line 1", bad, err)
		}
	}
}

// TestLoad resolves symbols of the running kernel both ways and checks
// them against a line-by-line read of the file.
func TestLoad(t *testing.T) {
	testutil.RequireRoot(t, "read kernel symbol addresses")
	tab, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var first struct {
		name string
		addr uint64
	}
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && (fields[1] == "T" || fields[1] == "t") && fields[2] == "do_exit" {
			first.name = fields[2]
			first.addr, _ = strconv.ParseUint(fields[0], 16, 64)
			break
		}
	}
	if first.name == "" {
		t.Fatal("no do_exit in /proc/kallsyms")
	}
	addr, ok := tab.Address("do_exit")
	if !ok || addr != first.addr {
		t.Fatalf("Address(do_exit) = %#x, %v; the file says %#x", addr, ok, first.addr)
	}
	name, off, ok := tab.Symbol(addr + 3)
	if !ok || name != "do_exit" || off != 3 {
		t.Errorf("Symbol(do_exit+3) = %q+%d, %v", name, off, ok)
	}
	if again, _ := Load(); again != tab {
		t.Error("Load read the file again")
	}
}

func BenchmarkSymbol(b *testing.B) {
	testutil.RequireRoot(b, "read kernel symbol addresses")
	tab, err := Load()
	if err != nil {
		b.Fatal(err)
	}
	addr, _ := tab.Address("do_exit")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := tab.Symbol(addr + 8); !ok {
			b.Fatal("not found")
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	testutil.RequireRoot(b, "read kernel symbol addresses")
	b.ReportAllocs()
	for b.Loop() {
		f, err := os.Open(Path)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Parse(f); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
