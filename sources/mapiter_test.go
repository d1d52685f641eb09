package sources

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sumWhere adds up field over the events match accepts.
func sumWhere(c *collector, field string, match func(map[string]any) bool) int64 {
	var n int64
	for _, ev := range c.snapshot() {
		if v, ok := ev[field]; ok && match(ev) {
			n += num(v)
		}
	}
	return n
}

// waitUntil polls cond until it holds, failing after 10s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTopperCountsBytesWritten: the topper's map, drained every interval,
// counts the bytes this test writes to a file, per process and fd; its
// events carry the key's and the value's fields, gadget_bytes rendered.
// The gadget's tracer (one event per fsync) runs beside it.
func TestTopperCountsBytesWritten(t *testing.T) {
	me := os.Getpid()
	g, c := startGadgetWith(t, "ig_topper", testObject(t, "ig_topper"), ParseOptions{},
		GadgetConfig{Params: map[string]string{"target_tgid": strconv.Itoa(me)}, Interval: 150 * time.Millisecond}, &collector{})
	var outputs []string
	for _, s := range g.Schemas() {
		outputs = append(outputs, s.Type)
	}
	if strings.Join(outputs, ",") != "sync_event,stats" {
		t.Errorf("outputs %v, want the tracer's then the topper's", outputs)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "written"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int64(f.Fd())
	buf := make([]byte, 1024)
	for i := 0; i < 10; i++ {
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	mine := func(ev map[string]any) bool { return num(ev["pid"]) == int64(me) && num(ev["fd"]) == fd }
	waitUntil(t, "10240 bytes counted", func() bool { return sumWhere(c, "bytes_raw", mine) >= 10240 })
	if got := sumWhere(c, "bytes_raw", mine); got != 10240 {
		t.Errorf("bytes counted = %d, want 10240 (each drain takes what the map held once)", got)
	}
	if got := sumWhere(c, "writes", mine); got != 10 {
		t.Errorf("writes counted = %d, want 10", got)
	}
	row := c.waitFor(t, "a stats row", func(ev map[string]any) bool { return mine(ev) && ev["snapshot"] != nil })
	if b, _ := row["bytes"].(string); !strings.HasSuffix(b, "B") || row["comm"] != selfComm() || num(row["snapshot"]) < 1 || num(row["snapshot_rows"]) < 1 {
		t.Errorf("row = %v, want bytes rendered, comm, snapshot keys", row)
	}
	c.waitFor(t, "the tracer's fsync event", func(ev map[string]any) bool {
		return num(ev["pid"]) == int64(me) && num(ev["fd"]) == fd && ev["snapshot"] == nil
	})
}

// TestHistogramBlockIO: direct writes to a file on a block device show up
// in the latency histogram (log2 µs) and the size histogram (linear pages)
// of that device.
func TestHistogramBlockIO(t *testing.T) {
	g, c := startGadgetWith(t, "ig_hist", testObject(t, "ig_hist"), ParseOptions{}, GadgetConfig{Interval: 150 * time.Millisecond}, &collector{})
	kinds := map[string]string{}
	for _, s := range g.Schemas() {
		for _, f := range s.Fields {
			if f.Histogram != "" {
				kinds[f.Name] = f.Histogram
			}
		}
	}
	if kinds["latency"] != "log2" || kinds["pages"] != "linear" {
		t.Errorf("histogram fields %v, want latency log2 and pages linear", kinds)
	}
	dir, err := os.MkdirTemp("/var/tmp", "sluice-blockio-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	fd, err := unix.Open(filepath.Join(dir, "direct"), unix.O_CREAT|unix.O_WRONLY|unix.O_DIRECT, 0o600)
	if err != nil {
		t.Skipf("no O_DIRECT on %s: %v", dir, err)
	}
	defer unix.Close(fd)
	// O_DIRECT wants an aligned buffer: a page from mmap is.
	buf, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			unix.Pwrite(fd, buf, int64(i%64)*4096)
			unix.Fsync(fd)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	histSum := func(ev map[string]any, field string) int64 {
		var n int64
		list, _ := ev[field].([]any)
		for _, v := range list {
			n += num(v)
		}
		return n
	}
	ev := c.waitFor(t, "block I/O in the latency histogram", func(ev map[string]any) bool { return histSum(ev, "latency") > 0 })
	if num(ev["dev"]) == 0 {
		t.Errorf("latency row has no device: %v", ev)
	}
	c.waitFor(t, "one-page requests in the size histogram", func(ev map[string]any) bool {
		list, _ := ev["pages"].([]any)
		return len(list) == 16 && num(list[1]) > 0
	})
}
