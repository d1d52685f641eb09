package sources

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/internal/testutil"
)

// TestMarkersInEveryForm: an object whose markers are spelled as older IG
// headers spelled them (gadget_snapshotter_ names) and as IG's newest do
// (ig:tracer, ig:param decl tags) parses to the same gadget, and runs.
func TestMarkersInEveryForm(t *testing.T) {
	spec, err := ParseGadget("legacy", testObject(t, "ig_markers_legacy"), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Streams) != 1 || spec.Streams[0].Name != "calls" || spec.Streams[0].FoundBy != "marker" {
		t.Errorf("streams = %+v, want tracer calls from its ig:tracer tag", spec.Streams)
	}
	if len(spec.Snapshots) != 1 || spec.Snapshots[0].Name != "procs" || spec.Snapshots[0].Programs[0] != "dump_procs" {
		t.Errorf("snapshots = %+v, want procs run by dump_procs (gadget_snapshotter_ name)", spec.Snapshots)
	}
	if _, ok := spec.Param("only_pid"); !ok || len(spec.Params) != 1 {
		t.Errorf("params = %+v, want only_pid from its ig:param tag", spec.Params)
	}
	// Both outputs run: the snapshot finds this process; the tracer, set
	// to this process, sees its getppid.
	me := os.Getpid()
	_, c := startGadgetWith(t, "legacy", testObject(t, "ig_markers_legacy"), ParseOptions{},
		GadgetConfig{Params: map[string]string{"only_pid": strconv.Itoa(me)}}, &collector{})
	c.waitFor(t, "this process in the snapshot", func(ev map[string]any) bool { return num(ev["pid"]) == int64(me) && ev["snapshot"] != nil })
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				unix.Getppid()
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	c.waitFor(t, "the tracer's event", func(ev map[string]any) bool { return num(ev["pid"]) == int64(me) && ev["snapshot"] == nil })
}

// TestRefusalsNameWhatAndWhatToDo: gadgets sluice cannot run fail at parse
// time with an error naming the marker, map or section and what to do.
func TestRefusalsNameWhatAndWhatToDo(t *testing.T) {
	for _, c := range []struct{ object, want string }{
		{"ig_bad_expr", `marker "ig:only_if:params.collect" on gated (GADGET_MAP_ONLY_IF)`},
		{"ig_bad_percpu", `map iterator "stats" (marker ig:mapiter:stats___stats): map "stats" is a PerCPUHash; sluice drains hash and LRU hash maps`},
		{"ig_bad_zeromap", "map unsized is declared with max_entries 0 and no parameter sizes it: add `const volatile __u32 unsized_max_entries"},
		{"ig_bad_traceloop", "map map_of_perf_buffers is a HashOfMaps of PerfEventArray maps (a traceloop-style output"},
	} {
		t.Run(c.object, func(t *testing.T) {
			_, err := ParseGadget(c.object, testObject(t, c.object), ParseOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ParseGadget = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestPinnedMapsPerInstance: a map pinned by name is pinned in a directory
// of this gadget instance (two instances do not share it), which Close
// removes.
func TestPinnedMapsPerInstance(t *testing.T) {
	testutil.RequireBPF(t)
	root := filepath.Join(bpffsPath, "sluice-test-"+strconv.Itoa(os.Getpid()))
	t.Cleanup(func() { os.RemoveAll(root) })
	open := func() *Gadget {
		spec, err := ParseGadget("ig_pinned", testObject(t, "ig_pinned"), ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		g, err := NewGadget(spec, GadgetConfig{Source: "pinned", PinRoot: root})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Open(); err != nil {
			t.Fatal(err)
		}
		return g
	}
	a, b := open(), open()
	dirA, dirB := a.PinDir(), b.PinDir()
	if dirA == "" || dirA == dirB || !strings.HasPrefix(dirA, root) {
		t.Fatalf("pin directories %q and %q, want two under %s", dirA, dirB, root)
	}
	for _, d := range []string{dirA, dirB} {
		if _, err := os.Stat(filepath.Join(d, "pinned_calls")); err != nil {
			t.Errorf("pinned map missing: %v", err)
		}
	}
	a.Close()
	if _, err := os.Stat(dirA); !os.IsNotExist(err) {
		t.Errorf("after Close, %s still exists (%v)", dirA, err)
	}
	if _, err := os.Stat(filepath.Join(dirB, "pinned_calls")); err != nil {
		t.Errorf("closing one instance removed the other's pin: %v", err)
	}
	b.Close()
	if _, err := os.Stat(dirB); !os.IsNotExist(err) {
		t.Errorf("after Close, %s still exists", dirB)
	}
}

// TestAbsentUprobeTargetsSkipped: uprobes on a library and on a symbol the
// host lacks are skipped (listed, logged); the rest of the gadget runs.
func TestAbsentUprobeTargetsSkipped(t *testing.T) {
	me := os.Getpid()
	g, c := startGadget(t, "ig_uprobe_absent", testObject(t, "ig_uprobe_absent"), ParseOptions{}, nil)
	skipped := strings.Join(g.SkippedPrograms(), ",")
	if skipped != "ig_absent_library,ig_absent_symbol" {
		t.Errorf("skipped = %q, want both absent uprobes", skipped)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				unix.Getppid()
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	c.waitFor(t, "the tracepoint's event", func(ev map[string]any) bool { return num(ev["pid"]) == int64(me) })
}

// TestUnreadBuffersListed: a ring buffer no tracer names is listed (and
// Open warns about it) rather than silently ignored. With -map, the other
// tracers' buffers are not read either, and are listed too.
func TestUnreadBuffersListed(t *testing.T) {
	spec, err := ParseGadget("multi", testObject(t, "multi_tracer"), ParseOptions{Map: "ring_a"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(spec.Unread, ",") != "perf_b" {
		t.Errorf("unread = %v, want perf_b", spec.Unread)
	}
	spec, err = ParseGadget("multi", testObject(t, "multi_tracer"), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Unread) != 0 {
		t.Errorf("unread = %v, want none", spec.Unread)
	}
}
