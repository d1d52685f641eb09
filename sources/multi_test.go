package sources

import (
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestMultiTracerRingAndPerf(t *testing.T) {
	elf := testObject(t, "multi_tracer")
	spec, err := ParseGadget("multi_tracer", elf, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Streams) != 2 {
		t.Fatalf("streams = %+v, want two", spec.Streams)
	}
	for _, st := range spec.Streams {
		if st.Name == "pgid" && (st.Map != "perf_b" || st.EventType.Name != "b_event") ||
			st.Name == "ppid" && (st.Map != "ring_a" || st.EventType.Name != "a_event" || st.LostMap != "ring_a_lost_samples") {
			t.Errorf("stream %+v", st)
		}
	}
	if p, ok := spec.Param("tag"); !ok || p.Kind != ParamString || p.Default != "default" || p.Size != 16 {
		t.Errorf("tag param = %+v, want a char[16] string defaulting to \"default\"", p)
	}

	pid := os.Getpid()
	_, c := startGadget(t, "multi_tracer", elf, ParseOptions{}, map[string]string{"target_pid": strconv.Itoa(pid), "tag": "from-config"})
	unix.Getppid()
	unix.Getpgid(pid)
	a := c.waitFor(t, "ring buffer record", func(ev map[string]any) bool { return ev["tag"] != nil })
	if a["tag"] != "from-config" || num(a["pid"]) != int64(pid) || a["comm"] != selfComm() {
		t.Errorf("ring record = %v, want tag from-config, our pid and comm", a)
	}
	b := c.waitFor(t, "perf record", func(ev map[string]any) bool { return ev["arg"] != nil })
	if num(b["arg"]) != int64(pid) || num(b["pid"]) != int64(pid) {
		t.Errorf("perf record = %v, want arg and pid %d", b, pid)
	}
	if _, ok := b["__pad"]; ok {
		t.Error("hidden member __pad was decoded")
	}
}

// TestKernelLossesCounted stalls the reader behind a blocked emitter with
// tiny buffers, so both the ring buffer and the perf buffer overflow, and
// checks every record the kernel could not store is counted: what arrives
// plus what was reported lost equals what was triggered.
func TestKernelLossesCounted(t *testing.T) {
	elf := testObject(t, "multi_tracer")
	pid := os.Getpid()
	c := &collector{gate: make(chan struct{})}
	g, _ := startGadgetWith(t, "multi_tracer", elf, ParseOptions{}, GadgetConfig{
		Params:     map[string]string{"target_pid": strconv.Itoa(pid)},
		BufferSize: 4096,
		BatchSize:  1,
	}, c)
	const n = 3000
	for i := 0; i < n; i++ {
		unix.Getppid()
		unix.Getpgid(pid)
	}
	close(c.gate)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got, lost := uint64(len(c.events)), c.lost
		c.mu.Unlock()
		if got+lost == 2*n {
			if lost == 0 {
				t.Fatal("nothing was lost: the buffers did not overflow, so the test proves nothing")
			}
			if g.KernelLost() != lost {
				t.Errorf("KernelLost() = %d, reported %d", g.KernelLost(), lost)
			}
			t.Logf("%d delivered, %d lost in the kernel and counted", got, lost)
			return
		}
		if got+lost > 2*n || time.Now().After(deadline) {
			t.Fatalf("delivered %d + lost %d = %d, want %d", got, lost, got+lost, 2*n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTypedRingbufMapValue(t *testing.T) {
	spec, err := ParseGadget("typed_ringbuf", testObject(t, "typed_ringbuf"), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := spec.Streams[0]; st.FoundBy != "map value" || st.EventType.Name != "event" {
		t.Errorf("stream typed by %s as %s, want the map's value type, struct event", st.FoundBy, st.EventType.Name)
	}
	_, c := startGadget(t, "typed_ringbuf", testObject(t, "typed_ringbuf"), ParseOptions{}, nil)
	unix.Getppid()
	ev := c.waitFor(t, "getppid", func(ev map[string]any) bool { return num(ev["pid"]) == int64(os.Getpid()) })
	if uint64(num(ev["value"])) != 0x1122334455667788 {
		t.Errorf("value = %v", ev["value"])
	}
}
