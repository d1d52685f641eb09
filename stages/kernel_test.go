package stages_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sources"
)

// These tests run each example stage on real events: built-in gadgets
// loaded into the kernel, a real pipeline, the stage in the real Wasm host,
// and a capturing sink; the test triggers the events itself.

// runPipeline starts a pipeline of the given built-in gadgets through
// stage into a capture sink, and stops it when the test ends.
func runPipeline(t *testing.T, stage pipeline.Stage, gadgetNames ...string) *capture {
	t.Helper()
	testutil.RequireBPF(t)
	var srcs []pipeline.Source
	for _, name := range gadgetNames {
		b, ok := gadgets.Lookup(name)
		if !ok {
			t.Fatalf("no built-in gadget %q", name)
		}
		spec, err := sources.ParseGadget(name, b.Object, sources.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		g, err := sources.NewGadget(spec, sources.GadgetConfig{Source: name, Host: "testhost"})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Open(); err != nil {
			t.Fatalf("open gadget %s: %v", name, err)
		}
		t.Cleanup(func() { g.Close() })
		srcs = append(srcs, g)
	}
	sink := &capture{}
	p, err := pipeline.New(pipeline.Spec{
		Name: "test", Host: "testhost", Sources: srcs, Stages: []pipeline.Stage{stage}, Sinks: []pipeline.Sink{sink},
		BatchDelay: 2 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pipeline: %v", err)
		}
	})
	// Give the readers a moment to be polling before the test triggers.
	time.Sleep(50 * time.Millisecond)
	return sink
}

// marker is unique per test run, so events of other processes never match.
func marker(t *testing.T) string {
	return fmt.Sprintf("sluice-test-%d-%s", os.Getpid(), filepath.Base(t.Name()))
}

// run execs a program and waits for it; a failure to start is fatal, the
// exit status is not (the event is what matters).
func run(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	_ = cmd.Wait()
}

// copyBinary copies /bin/true under a unique name, whose comm the test
// controls (the kernel keeps the first 15 bytes of the file name).
func copyBinary(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDropCommOnKernelEvents(t *testing.T) {
	for _, name := range []string{"drop-comm", "drop-comm-go", "drop-comm-rs"} {
		t.Run(name, func(t *testing.T) {
			mark := marker(t)
			dropped := copyBinary(t, "sluicedropme")
			kept := copyBinary(t, "sluicekeepme")
			sink := runPipeline(t, newStage(t, name, map[string]any{"comms": []string{"sluicedropme", "other"}}, 0), "trace_exec")
			run(t, exec.Command(dropped, mark))
			run(t, exec.Command(kept, mark))
			// The kept exec came after the dropped one: once it is out, the
			// dropped one would have been too.
			ev := sink.waitFor(t, "kept exec", func(m map[string]any) bool { return m["comm"] == "sluicekeepme" && hasArg(m, mark) })
			if ev["filename"] != kept || ev["gadget"] != "trace_exec" {
				t.Errorf("kept event %v", ev)
			}
			for _, m := range sink.snapshot() {
				if m["comm"] == "sluicedropme" {
					t.Errorf("dropped comm came through: %v", m)
				}
			}
		})
	}
}

func TestUIDToUserOnKernelEvents(t *testing.T) {
	mark := marker(t)
	sink := runPipeline(t, newStage(t, "uid-to-user", map[string]any{
		"users": map[string]any{"0": "table-root", "65534": "table-nobody"},
	}, 0), "trace_exec")
	cmd := exec.Command("/bin/true", mark)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	run(t, cmd)
	run(t, exec.Command("/bin/true", mark+"-root"))
	nobody := sink.waitFor(t, "exec as 65534", func(m map[string]any) bool { return hasArg(m, mark) && toInt(m["uid"]) == 65534 })
	if nobody["user"] != "table-nobody" {
		t.Errorf("user = %v, want table-nobody: %v", nobody["user"], nobody)
	}
	root := sink.waitFor(t, "exec as root", func(m map[string]any) bool { return hasArg(m, mark+"-root") })
	if root["user"] != "table-root" || root["comm"] != "true" {
		t.Errorf("root event %v", root)
	}
}

func TestRedactOnKernelEvents(t *testing.T) {
	mark := marker(t)
	sink := runPipeline(t, newStage(t, "redact", nil, 0), "trace_exec")
	run(t, exec.Command("/bin/true", mark, "--password=hunter2", "--token", "tok-123", "https://bob:s3cret@example.com/x"))
	ev := sink.waitFor(t, "exec", func(m map[string]any) bool { return hasArg(m, mark) })
	want := []any{"/bin/true", mark, "--password=****", "--token", "****", "https://bob:****@example.com/x"}
	if fmt.Sprint(ev["args"]) != fmt.Sprint(want) {
		t.Errorf("args = %v, want %v", ev["args"], want)
	}
	if ev["comm"] != "true" || ev["filename"] != "/bin/true" || toInt(ev["pid"]) <= 0 {
		t.Errorf("other fields changed: %v", ev)
	}
}

func TestRateLimitOnKernelEvents(t *testing.T) {
	bin := copyBinary(t, "sluiceratelim")
	stage := newStage(t, "rate-limit", map[string]any{"key": []string{"comm"}, "rate": 0.001, "burst": 2}, 100*time.Millisecond)
	sink := runPipeline(t, stage, "trace_exec")
	for range 5 {
		run(t, exec.Command(bin))
	}
	// A tick may fall between two execs, so the suppressed execs can be
	// reported over several summaries: wait until they add up.
	isSummary := func(m map[string]any) bool { return m["type"] == "rate_limit" && m["comm"] == "sluiceratelim" }
	suppressed := func() (n int64) {
		for _, m := range sink.snapshot() {
			if isSummary(m) {
				n += toInt(m["suppressed"])
			}
		}
		return n
	}
	sum := sink.waitFor(t, "rate_limit summaries adding up to 3", func(m map[string]any) bool {
		return isSummary(m) && suppressed() >= 3
	})
	if got := suppressed(); got != 3 || sum["host"] != "testhost" || sum["source"] != "trace_exec" || sum["gadget"] != "trace_exec" {
		t.Errorf("suppressed %d in all summaries, want 3; a summary: %v", got, sum)
	}
	passed := 0
	for _, m := range sink.snapshot() {
		if m["comm"] == "sluiceratelim" && m["type"] == nil {
			passed++
		}
	}
	if passed != 2 {
		t.Errorf("%d execs passed, want the burst of 2", passed)
	}
}

func TestOCSFOnKernelEvents(t *testing.T) {
	mark := marker(t)
	sink := runPipeline(t, newStage(t, "ocsf", nil, 0), "trace_exec", "trace_open", "trace_tcpconnect")

	run(t, exec.Command("/bin/true", mark))
	path := filepath.Join(t.TempDir(), mark+".txt")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	conn, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()

	proc := sink.waitFor(t, "Process Activity", func(m map[string]any) bool {
		p, _ := m["process"].(map[string]any)
		return toInt(m["class_uid"]) == 1007 && p != nil && p["cmd_line"] == "/bin/true "+mark
	})
	p := proc["process"].(map[string]any)
	if toInt(proc["type_uid"]) != 100701 || toInt(proc["category_uid"]) != 1 || toInt(proc["activity_id"]) != 1 ||
		p["name"] != "true" || p["file"].(map[string]any)["path"] != "/bin/true" ||
		toInt(p["parent_process"].(map[string]any)["pid"]) != int64(os.Getpid()) ||
		proc["device"].(map[string]any)["hostname"] != "testhost" || proc["status"] != "Success" || toInt(proc["time"]) <= 0 {
		t.Errorf("process activity %v", proc)
	}

	file := sink.waitFor(t, "File System Activity", func(m map[string]any) bool {
		f, _ := m["file"].(map[string]any)
		return toInt(m["class_uid"]) == 1001 && f != nil && f["path"] == path
	})
	actor := file["actor"].(map[string]any)["process"].(map[string]any)
	if toInt(file["type_uid"]) != 100114 || toInt(actor["pid"]) != int64(os.Getpid()) || file["file"].(map[string]any)["name"] != mark+".txt" {
		t.Errorf("file activity %v", file)
	}

	netev := sink.waitFor(t, "Network Activity", func(m map[string]any) bool {
		d, _ := m["dst_endpoint"].(map[string]any)
		return toInt(m["class_uid"]) == 4001 && d != nil && toInt(d["port"]) == int64(port)
	})
	src := netev["src_endpoint"].(map[string]any)
	ci := netev["connection_info"].(map[string]any)
	if toInt(netev["type_uid"]) != 400101 || netev["dst_endpoint"].(map[string]any)["ip"] != "127.0.0.1" || src["ip"] != "127.0.0.1" ||
		toInt(src["port"]) == 0 || ci["protocol_name"] != "tcp" || toInt(ci["direction_id"]) != 2 || toInt(ci["protocol_ver_id"]) != 4 {
		t.Errorf("network activity %v", netev)
	}
}
