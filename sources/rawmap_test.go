package sources

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/internal/testutil"
)

// TestRawMapNarrowPerCPU checks the per-CPU layout on a real map.
func TestRawMapNarrowPerCPU(t *testing.T) {
	testutil.RequireBPF(t)
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	checkNarrowPerCPU(t, cpus)
}

// checkNarrowPerCPU checks the padding of per-CPU values narrower than 8
// bytes on a real per-CPU array of u32: the guest's buffer holds each
// CPU's value at a multiple of 8, whatever its padding held is not
// written, and a lookup zeroes it.
func checkNarrowPerCPU(t *testing.T, cpus int) {
	t.Helper()
	narrow, err := ebpf.NewMap(&ebpf.MapSpec{Name: "narrow", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer narrow.Close()
	h, err := newRawMap("narrow", narrow)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Info().ValueSize; got != uint32(8*cpus) {
		t.Fatalf("Info().ValueSize = %d for u32 per CPU; want %d (8 per CPU)", got, 8*cpus)
	}
	key := binary.LittleEndian.AppendUint32(nil, 0)
	val := bytes.Repeat([]byte{0xff}, 8*cpus)
	for c := range cpus {
		binary.LittleEndian.PutUint32(val[8*c:], uint32(0xa0+c))
	}
	if err := h.Update(key, val, 0); err != nil {
		t.Fatal(err)
	}
	var kernel []uint32 // what the kernel holds, read without the handle
	if err := narrow.Lookup(key, &kernel); err != nil {
		t.Fatal(err)
	}
	for c, v := range kernel {
		if v != uint32(0xa0+c) {
			t.Errorf("after Update, CPU %d holds %#x; want %#x", c, v, 0xa0+c)
		}
	}
	got := bytes.Repeat([]byte{0xee}, 8*cpus)
	if err := h.Lookup(key, got); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 8*cpus)
	for c := range cpus {
		binary.LittleEndian.PutUint32(want[8*c:], uint32(0xa0+c))
	}
	if !bytes.Equal(got, want) {
		t.Errorf("per-CPU lookup of u32 values = %x, want %x", got, want)
	}
}

// TestPerfReader reads the perf event array whos of the IG-style gadget
// ig_wasm (no tracer reads it: a Wasm module would) record by record: no
// record is "not ready" at once, then the who of a getpriority call of
// this process arrives.
func TestPerfReader(t *testing.T) {
	g, _ := startGadget(t, "ig_wasm", testObject(t, "ig_wasm"), ParseOptions{}, map[string]string{"target_tgid": strconv.Itoa(os.Getpid())})
	whos, err := g.RawMap("whos")
	if err != nil {
		t.Fatal(err)
	}
	r, err := whos.OpenPerfReader(4096, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := (&RawMap{name: "counts", m: mustMap(t, g, "counts")}).OpenPerfReader(4096, false); err == nil {
		t.Error("OpenPerfReader of a hash map succeeded")
	}
	buf := make([]byte, 64) // perf pads a record's raw data (12 bytes for these 8)
	for {
		if _, err := r.Read(buf); errors.Is(err, ErrNoRecord) {
			break // drained: nothing of this test yet
		} else if err != nil {
			t.Fatal(err)
		}
	}
	const who = 0x7fd00001
	deadline := time.Now().Add(10 * time.Second)
	for {
		unix.Syscall(unix.SYS_GETPRIORITY, unix.PRIO_PROCESS, who, 0)
		n, err := r.Read(buf)
		if err == nil && n >= 8 && binary.LittleEndian.Uint64(buf) == who {
			break
		}
		if err != nil && !errors.Is(err, ErrNoRecord) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no record of who %#x within 10s (last: %d bytes, %v)", who, n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	unix.Syscall(unix.SYS_GETPRIORITY, unix.PRIO_PROCESS, who, 0)
	if _, err := r.Read(make([]byte, 4)); err == nil {
		t.Error("a record of 8 bytes was read into 4")
	}
}

func mustMap(t *testing.T, g *Gadget, name string) *ebpf.Map {
	t.Helper()
	m, err := g.Map(name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestNewRawMap creates a map for a module, uses it through the raw view
// and closes it; a gadget's own map is not closed by RawMap.Close.
func TestNewRawMap(t *testing.T) {
	testutil.RequireBPF(t)
	h, err := NewRawMap("scratch", uint32(ebpf.Hash), 4, 8, 1)
	if err != nil {
		t.Fatal(err)
	}
	k, v := binary.LittleEndian.AppendUint32(nil, 7), binary.LittleEndian.AppendUint64(nil, 42)
	if err := h.Update(k, v, 0); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8)
	if err := h.Lookup(k, got); err != nil || !bytes.Equal(got, v) {
		t.Fatalf("Lookup = %x, %v; want %x", got, err, v)
	}
	if err := h.Update(binary.LittleEndian.AppendUint32(nil, 8), v, 0); err == nil {
		t.Error("a second key fit a map of one entry")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Lookup(k, got); err == nil {
		t.Error("the map works after Close")
	}
	if _, err := NewRawMap("bad", uint32(ebpf.Hash), 0, 8, 1); err == nil || !strings.Contains(err.Error(), `create map "bad"`) {
		t.Errorf("a map with 0-byte keys: %v", err)
	}
	g, _ := startGadget(t, "ig_wasm", testObject(t, "ig_wasm"), ParseOptions{}, nil)
	counts, err := g.RawMap("counts")
	if err != nil {
		t.Fatal(err)
	}
	if err := counts.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := mustMap(t, g, "counts").Info(); err != nil {
		t.Errorf("RawMap.Close closed the gadget's map: %v", err)
	}
}
