package sources

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/internal/testutil"
)

// runUntilDone opens a gadget and runs it until Run returns by itself (a
// gadget whose outputs are iterators finishes with them), failing after a
// timeout.
func runUntilDone(t *testing.T, name string, elf []byte, cfg GadgetConfig) *collector {
	t.Helper()
	testutil.RequireBPF(t)
	spec, err := ParseGadget(name, elf, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Source, cfg.Host = name+"-src", "testhost"
	g, err := NewGadget(spec, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Open(); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	c := &collector{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.Run(ctx, c); err != nil {
		t.Fatalf("run: %v", err)
	}
	if ctx.Err() != nil || !g.Finished() {
		t.Fatalf("the gadget did not finish after its snapshots (Finished %v)", g.Finished())
	}
	return c
}

// byOutput groups events by their schema's type (the element struct).
func byOutput(c *collector) map[string][]map[string]any {
	out := map[string][]map[string]any{}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, ev := range c.events {
		out[c.raw[i].Schema.Type] = append(out[c.raw[i].Schema.Type], ev)
	}
	return out
}

func find(evs []map[string]any, match func(map[string]any) bool) map[string]any {
	for _, ev := range evs {
		if match(ev) {
			return ev
		}
	}
	return nil
}

// TestSnapshotIterators runs every iterator kind once, as `sluice run` does,
// and finds in each snapshot what the test set up: a child process (iter/
// task), a file it holds open (iter/task_file), a TCP listener and a UDP
// socket (iter/tcp, iter/udp). It takes two snapshots 300ms apart, then
// finishes by itself; each snapshot's rows carry its number and its size.
func TestSnapshotIterators(t *testing.T) {
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	path := filepath.Join(t.TempDir(), "held-open")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	me := os.Getpid()

	spec, err := ParseGadget("ig_snapshot", testObject(t, "ig_snapshot"), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, s := range spec.Snapshots {
		names[s.Name] = true
	}
	for _, want := range []string{"processes", "files", "sockets"} {
		if !names[want] {
			t.Errorf("iterator %q not found (have %v)", want, names)
		}
	}

	cfg := GadgetConfig{Params: map[string]string{"target_tgid": strconv.Itoa(me)}, Interval: 300 * time.Millisecond, Runs: 2}
	out := byOutput(runUntilDone(t, "ig_snapshot", testObject(t, "ig_snapshot"), cfg))

	procs := out["proc_entry"]
	if ev := find(procs, func(ev map[string]any) bool { return num(ev["pid"]) == int64(child.Process.Pid) }); ev == nil {
		t.Errorf("child %d not in the process snapshot (%d rows)", child.Process.Pid, len(procs))
	} else if ev["comm"] != "sleep" || num(ev["ppid"]) != int64(me) {
		t.Errorf("child row = %v, want comm sleep, ppid %d", ev, me)
	}
	if ev := find(out["file_entry"], func(ev map[string]any) bool { return ev["path"] == path }); ev == nil {
		t.Errorf("open file %s not in the files snapshot: %v", path, out["file_entry"])
	} else if num(ev["pid"]) != int64(me) || fmt.Sprint(ev["mode"]) != "-rw-r--r--" && fmt.Sprint(ev["mode"]) != "-rw-------" {
		t.Errorf("file row = %v", ev)
	}
	// TCP and UDP number their ports apart, and other processes' sockets
	// are in the snapshot too: a row is this test's socket by protocol,
	// address and port.
	tcpPort := int64(ln.Addr().(*net.TCPAddr).Port)
	if ev := find(out["socket_entry"], func(ev map[string]any) bool {
		return ev["src.proto"] == "TCP" && ev["src.addr"] == "127.0.0.1" && num(ev["src.port"]) == tcpPort && ev["state"] == "LISTEN"
	}); ev == nil {
		t.Errorf("TCP listener 127.0.0.1:%d not in the sockets snapshot", tcpPort)
	}
	udpPort := int64(udp.LocalAddr().(*net.UDPAddr).Port)
	if ev := find(out["socket_entry"], func(ev map[string]any) bool {
		return ev["src.proto"] == "UDP" && ev["src.addr"] == "127.0.0.1" && num(ev["src.port"]) == udpPort
	}); ev == nil {
		t.Errorf("UDP socket 127.0.0.1:%d not in the sockets snapshot", udpPort)
	}

	// Every output took two snapshots (Runs: 2, every 300ms); each
	// snapshot's rows carry its number and its size.
	for typ, evs := range out {
		rows := map[int64]int64{}
		size := map[int64]int64{}
		for _, ev := range evs {
			n := num(ev["snapshot"])
			rows[n]++
			size[n] = num(ev["snapshot_rows"])
		}
		for n, got := range rows {
			if n < 1 || n > 2 || got != size[n] {
				t.Errorf("%s snapshot %d: %d rows, snapshot_rows says %d", typ, n, got, size[n])
			}
		}
		if len(rows) != 2 {
			t.Errorf("%s: snapshots %v, want 1 and 2", typ, rows)
		}
	}
}

// haveMapElemIterators reports whether the kernel loads iter/bpf_map_elem
// programs; some refuse them with EPERM even to root.
func haveMapElemIterators(t *testing.T) bool {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.Tracing, AttachType: ebpf.AttachTraceIter, AttachTo: "bpf_map_elem", License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err == nil {
		prog.Close()
		return true
	}
	if !errors.Is(err, unix.EPERM) {
		t.Fatalf("probe iter/bpf_map_elem: %v", err)
	}
	return false
}

// TestMapElemIterator walks a map with iter/bpf_map_elem (the map given by
// GADGET_ITER_TARGET_MAP) and finds this process's getppid calls, counted
// by a tracepoint. On a kernel that refuses map element iterators, the
// load fails with an error that names the program and says the kernel
// refused it.
func TestMapElemIterator(t *testing.T) {
	testutil.RequireBPF(t)
	me := os.Getpid()
	cfg := GadgetConfig{Params: map[string]string{"target_tgid": strconv.Itoa(me)}, Interval: 200 * time.Millisecond}
	if !haveMapElemIterators(t) {
		spec, err := ParseGadget("ig_mapelem", testObject(t, "ig_mapelem"), ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		g, err := NewGadget(spec, cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = g.Open()
		g.Close()
		var perr *ProgramError
		if !errors.As(err, &perr) || !errors.Is(err, ErrKernelFeature) || !strings.Contains(err.Error(), "refused an iter/bpf_map_elem program") || strings.Contains(err.Error(), "MEMLOCK") {
			t.Fatalf("load on a kernel refusing map element iterators: %v; want a ProgramError saying the kernel refused iter/bpf_map_elem", err)
		}
		return
	}
	g, c := startGadgetWith(t, "ig_mapelem", testObject(t, "ig_mapelem"), ParseOptions{}, cfg, &collector{})
	_ = g
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
	ev := c.waitFor(t, "this process's calls", func(ev map[string]any) bool { return num(ev["pid"]) == int64(me) && num(ev["count"]) > 0 })
	if num(ev["snapshot"]) < 1 {
		t.Errorf("row = %v, want a snapshot number", ev)
	}
}
