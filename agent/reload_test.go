package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sources"
)

// reloadable is a test agent run from a config file that a test rewrites
// and reloads.
type reloadable struct {
	*testAgent
	dir, path string
}

func startReloadable(t *testing.T, text string) *reloadable {
	t.Helper()
	dir := t.TempDir()
	r := &reloadable{dir: dir, path: filepath.Join(dir, "sluice.hcl")}
	r.write(t, text)
	f, diags := config.NewParser().ParseFile(r.path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	r.testAgent = startAgent(t, f, Options{Load: LoadFile(r.path, FetchOptions{})})
	return r
}

// write writes the config file; %DIR% stands for the test's directory.
func (r *reloadable) write(t *testing.T, text string) {
	t.Helper()
	if err := os.WriteFile(r.path, []byte(strings.ReplaceAll(text, "%DIR%", r.dir)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (r *reloadable) reload(t *testing.T) *ReloadResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := r.a.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// liveGadget returns the gadget the source called name runs.
func (a *Agent) liveGadget(name string) *sources.Gadget {
	a.mu.Lock()
	ls := a.sources[name]
	a.mu.Unlock()
	if ls == nil {
		return nil
	}
	return ls.gadget()
}

// openLoad opens files in dir at about rate per second until stopped,
// from this process, and counts the opens.
type openLoad struct {
	n    atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func startOpenLoad(t *testing.T, dir string, rate int) *openLoad {
	l := &openLoad{stop: make(chan struct{}), done: make(chan struct{})}
	const batch = 50
	go func() {
		defer close(l.done)
		tick := time.NewTicker(time.Second * batch / time.Duration(rate))
		defer tick.Stop()
		for {
			for range batch {
				i := l.n.Add(1)
				fd, err := unix.Open(filepath.Join(dir, "f"+strconv.FormatInt(i%64, 10)), unix.O_RDONLY|unix.O_CREAT, 0o600)
				if err == nil {
					unix.Close(fd)
				}
			}
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(l.halt)
	return l
}

func (l *openLoad) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

// fileEvents reads the JSON lines of the files matching pattern and
// returns the seq of every event of source, how many of those have a path
// in dir (the load's opens), and how many loss records they hold.
func fileEvents(t *testing.T, pattern, source, dir string) (seqs []uint64, inDir, losses int) {
	t.Helper()
	files, _ := filepath.Glob(pattern)
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev struct {
				Type   string `json:"type"`
				Source string `json:"source"`
				Seq    uint64 `json:"seq"`
				Path   string `json:"path"`
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			switch {
			case ev.Type == "loss":
				losses++
			case ev.Source == source:
				seqs = append(seqs, ev.Seq)
				if dir != "" && strings.HasPrefix(ev.Path, dir+"/") {
					inDir++
				}
			}
		}
		f.Close()
	}
	return seqs, inDir, losses
}

// checkContiguous checks that seqs hold 1..n exactly once, in any order.
func checkContiguous(t *testing.T, seqs []uint64) {
	t.Helper()
	seen := make(map[uint64]int, len(seqs))
	var max uint64
	for _, s := range seqs {
		seen[s]++
		max = maxOf(max, s)
	}
	for s := uint64(1); s <= max; s++ {
		if seen[s] != 1 {
			t.Fatalf("seq %d delivered %d times (of %d events, last seq %d)", s, seen[s], len(seqs), max)
		}
	}
}

func maxOf(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

const reloadConfig = `
agent {
  name           = "reload-test"
  data_dir       = "%DIR%"
  control_socket = "%DIR%/c.sock"
  filter_self    = false # the test process runs the agent and makes the events
  shutdown_grace = "10s"
}
source "gadget" "open" {
  gadget = "trace_open"
  params = { target_pid = %PID% }
}
source "gadget" "exec" { gadget = "trace_exec" }
sink "file" "audit" {
  path = "audit.jsonl"
}
sink "stdout" "console" { format = %FORMAT% }
pipeline "steady" {
  sources = [source.gadget.open]
  sinks   = [sink.file.audit]
  queue { when_full = "block" }
}
pipeline "other" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
}
`

func reloadText(format string) string {
	return strings.NewReplacer("%PID%", strconv.Itoa(os.Getpid()), "%FORMAT%", strconv.Quote(format)).Replace(reloadConfig)
}

// TestReloadKeepsUnchangedPipelineUnderLoad reloads ten times while the
// test opens files at a steady rate, changing another pipeline's sink each
// time: the unchanged pipeline keeps its gadget, reader and ring buffer
// (the same objects, never restarted), loses no event (every open the test
// made is in the file once, sequence numbers without a gap), while the
// changed sink is swapped each time.
func TestReloadKeepsUnchangedPipelineUnderLoad(t *testing.T) {
	testutil.RequireBPF(t)
	r := startReloadable(t, reloadText("json"))
	g := r.a.liveGadget("open")
	if g == nil {
		t.Fatal("no live gadget for source open")
	}
	ring, err := g.Map("events")
	if err != nil {
		t.Fatal(err)
	}
	ringInfo, err := ring.Info()
	if err != nil {
		t.Fatal(err)
	}
	ringID, _ := ringInfo.ID()
	consoleBefore := r.a.sinks["console"]

	loadDir := t.TempDir()
	load := startOpenLoad(t, loadDir, 5000)
	for i := range 10 {
		before := load.n.Load()
		r.waitFor("opens between reloads", 10*time.Second, func() {}, func() bool { return load.n.Load() > before+500 })
		format := []string{"table", "json"}[i%2]
		r.write(t, reloadText(format))
		res := r.reload(t)
		if !res.OK {
			t.Fatalf("reload %d refused: %s\n%s", i, res.Error, res.Rendered)
		}
		if len(res.Changes) != 1 || res.Changes[0] != (Change{Kind: "sink", Name: "console", Action: "replaced"}) {
			t.Fatalf("reload %d: changes %+v, want only sink console replaced", i, res.Changes)
		}
		if got := r.a.liveGadget("open"); got != g {
			t.Fatalf("reload %d replaced the unchanged source's gadget", i)
		}
		if r.a.sinks["console"] == consoleBefore {
			t.Fatalf("reload %d kept the changed sink", i)
		}
		consoleBefore = r.a.sinks["console"]
	}
	load.halt()
	opens := load.n.Load()
	// Every open the load made is in the file: wait for the last.
	r.waitFor("every open in the file", 20*time.Second, func() {}, func() bool {
		_, n, _ := fileEvents(t, filepath.Join(r.dir, "audit*.jsonl"), "open", loadDir)
		return int64(n) >= opens
	})
	if info, err := ring.Info(); err != nil {
		t.Fatalf("the ring buffer is gone after the reloads: %v", err)
	} else if id, _ := info.ID(); id != ringID {
		t.Errorf("the ring buffer map is %d after the reloads, was %d", id, ringID)
	}
	r.stop()
	seqs, n, losses := fileEvents(t, filepath.Join(r.dir, "audit*.jsonl"), "open", loadDir)
	checkContiguous(t, seqs)
	if int64(n) != opens {
		t.Errorf("the file has %d events of the load's opens; the load opened %d files", n, opens)
	}
	if losses != 0 {
		t.Errorf("the stream has %d loss records", losses)
	}
	snap := r.reg.Snapshot()
	for _, reason := range []string{pipeline.ReasonKernel, pipeline.ReasonQueueFull, pipeline.ReasonShutdown} {
		for _, c := range [][2]string{{"source", "open"}, {"pipeline", "steady"}, {"sink", "audit"}} {
			if n := snap.Get(pipeline.MetricDropped, "component", c[0], "name", c[1], "reason", reason); n != 0 {
				t.Errorf("%s %s dropped %v events (%s)", c[0], c[1], n, reason)
			}
		}
	}
	if n := snap.Get(MetricSourceRestarts, "component", "source", "name", "open"); n != 0 {
		t.Errorf("source open restarted %v times", n)
	}
}

const sinkSwapConfig = `
agent {
  data_dir       = "%DIR%"
  control_socket = "%DIR%/c.sock"
  filter_self    = false # the test process runs the agent and makes the events
}
source "gadget" "open" {
  gadget = "trace_open"
  params = { target_pid = %PID% }
}
sink "file" "audit" { path = "%PATH%" }
pipeline "p" {
  sources = [source.gadget.open]
  sinks   = [sink.file.audit]
  queue { when_full = "block" }
}
`

// TestReloadSwapsChangedSink: a sink whose settings change is built
// beside the old one and swapped in on the same queue: the events before
// the reload are in the old file, those after in the new, none lost or
// twice, and the source keeps its gadget.
func TestReloadSwapsChangedSink(t *testing.T) {
	testutil.RequireBPF(t)
	text := func(path string) string {
		return strings.NewReplacer("%PID%", strconv.Itoa(os.Getpid()), "%PATH%", path).Replace(sinkSwapConfig)
	}
	r := startReloadable(t, text("before.jsonl"))
	g := r.a.liveGadget("open")
	loadDir := t.TempDir()
	load := startOpenLoad(t, loadDir, 2000)
	r.waitFor("events in the first file", 10*time.Second, func() {}, func() bool {
		_, n, _ := fileEvents(t, filepath.Join(r.dir, "before.jsonl"), "open", loadDir)
		return n > 200
	})
	r.write(t, text("after.jsonl"))
	if res := r.reload(t); !res.OK || len(res.Changes) != 1 || res.Changes[0].Name != "audit" {
		t.Fatalf("reload: %+v", res)
	}
	if r.a.liveGadget("open") != g {
		t.Error("the reload replaced the unchanged source")
	}
	r.waitFor("events in the second file", 10*time.Second, func() {}, func() bool {
		_, n, _ := fileEvents(t, filepath.Join(r.dir, "after.jsonl"), "open", loadDir)
		return n > 200
	})
	load.halt()
	opens := load.n.Load()
	r.waitFor("every open in the files", 20*time.Second, func() {}, func() bool {
		_, n, _ := fileEvents(t, filepath.Join(r.dir, "*.jsonl"), "open", loadDir)
		return int64(n) >= opens
	})
	r.stop()
	before, n1, _ := fileEvents(t, filepath.Join(r.dir, "before.jsonl"), "open", loadDir)
	after, n2, _ := fileEvents(t, filepath.Join(r.dir, "after.jsonl"), "open", loadDir)
	checkContiguous(t, append(append([]uint64{}, before...), after...))
	if n1+n2 != int(opens) {
		t.Errorf("%d + %d events of the load's opens in the files; the load opened %d", n1, n2, opens)
	}
	// The swap falls between two writes: every event of the old file
	// comes before every event of the new one.
	if before[len(before)-1] >= after[0] {
		t.Errorf("the old file ends at seq %d, the new one starts at %d", before[len(before)-1], after[0])
	}
}

// TestReloadInvalidChangesNothing: a new config with an error is refused
// whole: the reload says where (file:line:col), and every component keeps
// running as it was.
func TestReloadInvalidChangesNothing(t *testing.T) {
	testutil.RequireBPF(t)
	r := startReloadable(t, reloadText("json"))
	g := r.a.liveGadget("open")
	console := r.a.sinks["console"]
	plan := r.a.plan
	bad := strings.Replace(reloadText("table"), `gadget = "trace_exec"`, `gadget = "trace_exce"`, 1)
	r.write(t, bad)
	res := r.reload(t)
	if res.OK {
		t.Fatal("a config naming an unknown gadget was applied")
	}
	if len(res.Diagnostics) != 1 {
		t.Fatalf("diagnostics %+v, want one", res.Diagnostics)
	}
	d := res.Diagnostics[0]
	wantLine := strings.Count(bad[:strings.Index(bad, "trace_exce")], "\n") + 1
	if d.Summary != "Unknown gadget" || d.File != r.path || d.Line != wantLine || d.Column == 0 {
		t.Errorf("diagnostic %+v, want Unknown gadget at %s:%d", d, r.path, wantLine)
	}
	if want := fmt.Sprintf("%s:%d:%d", r.path, d.Line, d.Column); !strings.Contains(res.Rendered, want) {
		t.Errorf("rendered diagnostics lack %s:\n%s", want, res.Rendered)
	}
	if r.a.liveGadget("open") != g || r.a.sinks["console"] != console || r.a.plan != plan {
		t.Error("the refused reload changed the running agent")
	}
	if got := r.a.LastReload(); got != res {
		t.Error("LastReload is not the refused reload")
	}
	// The agent still works: an exec reaches the console sink.
	r.waitForExec("after-refused-reload")
	r.stop()
}

// TestReloadAddsAndRemovesPipelines: a pipeline the new config adds
// starts, one it drops drains and stops (its gadget detached), and a
// changed stage is rebuilt beside the old one.
func TestReloadAddsAndRemovesPipelines(t *testing.T) {
	testutil.RequireBPF(t)
	base := `
agent {
  data_dir       = "%DIR%"
  control_socket = "%DIR%/c.sock"
  filter_self    = false # the test process runs the agent and makes the events
}
source "gadget" "exec" { gadget = "trace_exec" }
source "gadget" "open" {
  gadget = "trace_open"
  params = { target_pid = ` + strconv.Itoa(os.Getpid()) + ` }
}
stage "wasm" "filter" {
  module = "drop-comm"
  params = { comms = [%COMMS%] }
}
sink "stdout" "console" { format = "json" }
pipeline "execs" {
  sources = [source.gadget.exec]
  stages  = [stage.wasm.filter]
  sinks   = [sink.stdout.console]
}
`
	withOpens := `
pipeline "opens" {
  sources = [source.gadget.open]
  sinks   = [sink.stdout.console]
}
`
	r := startReloadable(t, strings.Replace(base, "%COMMS%", `"sh"`, 1)+withOpens)
	openGadget := r.a.liveGadget("open")
	r.waitForExec("before")
	r.write(t, strings.Replace(base, "%COMMS%", `"sh", "bash"`, 1))
	res := r.reload(t)
	if !res.OK {
		t.Fatalf("reload refused: %s\n%s", res.Error, res.Rendered)
	}
	// The console's table columns follow the streams feeding it, which
	// changed: it is rebuilt too.
	want := []Change{{Kind: "sink", Name: "console", Action: "replaced"}, {Kind: "stage", Name: "filter", Pipeline: "execs", Action: "replaced"}, {Kind: "pipeline", Name: "opens", Action: "removed"}}
	if fmt.Sprint(res.Changes) != fmt.Sprint(want) {
		t.Errorf("changes %+v, want %+v", res.Changes, want)
	}
	if _, err := openGadget.Map("events"); err == nil {
		t.Error("the removed pipeline's gadget is still loaded")
	}
	st := r.a.Status()
	if len(st.Pipelines) != 1 || st.Pipelines[0].Name != "execs" {
		t.Errorf("status lists pipelines %+v after the reload", st.Pipelines)
	}
	r.waitForExec("after")
	r.write(t, strings.Replace(base, "%COMMS%", `"sh", "bash"`, 1)+withOpens)
	res = r.reload(t)
	if !res.OK || fmt.Sprint(res.Changes) != fmt.Sprint([]Change{{Kind: "sink", Name: "console", Action: "replaced"}, {Kind: "source", Name: "open", Pipeline: "opens", Action: "added"}, {Kind: "pipeline", Name: "opens", Action: "added"}}) {
		t.Fatalf("reload adding the pipeline back: %+v", res)
	}
	dir := t.TempDir()
	marker := filepath.Join(dir, "back")
	r.waitForOutput("an open event from the re-added pipeline", 10*time.Second,
		func() {
			if fd, err := unix.Open(marker, unix.O_RDONLY|unix.O_CREAT, 0o600); err == nil {
				unix.Close(fd)
			}
		},
		func(out string) bool { return strings.Contains(out, marker) })
	r.stop()
}
