package sources

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf"

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
