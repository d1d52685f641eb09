package sources

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// selfComm is the kernel's comm of this test process: the executable's
// base name cut to 15 bytes.
func selfComm() string {
	c := filepath.Base(os.Args[0])
	if len(c) > 15 {
		c = c[:15]
	}
	return c
}

// checkEnvelope asserts the envelope fields every event carries.
func checkEnvelope(t *testing.T, ev map[string]any, source, gadget string) {
	t.Helper()
	if ev["host"] != "testhost" || ev["source"] != source || ev["gadget"] != gadget {
		t.Errorf("envelope host/source/gadget = %v/%v/%v, want testhost/%s/%s", ev["host"], ev["source"], ev["gadget"], source, gadget)
	}
	if num(ev["seq"]) < 1 {
		t.Errorf("seq = %v, want >= 1", ev["seq"])
	}
	ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(ev["time"]))
	if err != nil {
		t.Fatalf("time %v: %v", ev["time"], err)
	}
	if d := time.Since(ts); d < -2*time.Second || d > 30*time.Second {
		t.Errorf("time %v is %v away from now", ts, d)
	}
}

func TestTraceExec(t *testing.T) {
	_, c := startGadget(t, "trace_exec", nil, ParseOptions{}, nil)
	marker := fmt.Sprintf("sluice-exec-%d", rand.Uint32())
	args := []string{"/bin/echo", marker, "", "two words"}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Args = args
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	ev := c.waitFor(t, "exec of /bin/echo", func(ev map[string]any) bool {
		l, _ := ev["args"].([]any)
		return len(l) > 1 && l[1] == marker
	})
	checkEnvelope(t, ev, "trace_exec-src", "trace_exec")
	got := map[string]any{
		"pid": num(ev["pid"]), "ppid": num(ev["ppid"]), "uid": num(ev["uid"]), "gid": num(ev["gid"]),
		"comm": ev["comm"], "filename": ev["filename"], "args": ev["args"], "ret": num(ev["ret"]),
	}
	want := map[string]any{
		"pid": int64(cmd.Process.Pid), "ppid": int64(os.Getpid()), "uid": int64(os.Geteuid()), "gid": int64(os.Getegid()),
		"comm": "echo", "filename": "/bin/echo", "args": []any{"/bin/echo", marker, "", "two words"}, "ret": int64(0),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("trace_exec event (-want +got):\n%s", diff)
	}
	if ev["user"] != "root" && os.Geteuid() == 0 {
		t.Errorf("user = %v, want root", ev["user"])
	}

	// A failed exec is reported with its error.
	missing := "/nonexistent/" + marker
	if err := exec.Command(missing).Run(); err == nil {
		t.Fatal("exec of a missing file succeeded")
	}
	ev = c.waitFor(t, "failed exec", func(ev map[string]any) bool { return ev["filename"] == missing })
	if num(ev["ret"]) != -int64(unix.ENOENT) || ev["ret_error"] != "ENOENT" {
		t.Errorf("failed exec ret = %v (%v), want -2 (ENOENT)", ev["ret"], ev["ret_error"])
	}
}

func TestTraceExecIgnoreFailed(t *testing.T) {
	_, c := startGadget(t, "trace_exec", nil, ParseOptions{}, map[string]string{"ignore_failed": "true"})
	marker := fmt.Sprintf("/nonexistent/sluice-%d", rand.Uint32())
	exec.Command(marker).Run()
	exec.Command("/bin/true", marker).Run()
	c.waitFor(t, "exec of /bin/true", func(ev map[string]any) bool {
		l, _ := ev["args"].([]any)
		return len(l) == 2 && l[1] == marker
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range c.events {
		if ev["filename"] == marker {
			t.Errorf("failed exec reported although ignore_failed=true: %v", ev)
		}
	}
}

func TestTraceOpen(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	_, c := startGadget(t, "trace_open", nil, ParseOptions{}, map[string]string{"target_pid": pid})
	path := filepath.Join(t.TempDir(), "opened")
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC
	fd, err := unix.Open(path, flags, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	ev := c.waitFor(t, "open of "+path, func(ev map[string]any) bool { return ev["path"] == path })
	checkEnvelope(t, ev, "trace_open-src", "trace_open")
	got := map[string]any{
		"pid": num(ev["pid"]), "uid": num(ev["uid"]), "comm": ev["comm"], "flags": ev["flags"], "flags_raw": num(ev["flags_raw"]),
		"mode": ev["mode"], "mode_raw": num(ev["mode_raw"]), "ret": num(ev["ret"]), "ret_error": ev["ret_error"],
	}
	want := map[string]any{
		"pid": int64(os.Getpid()), "uid": int64(os.Geteuid()), "comm": selfComm(), "flags": "O_WRONLY|O_CREAT|O_TRUNC", "flags_raw": int64(flags),
		"mode": "-rw-r-----", "mode_raw": int64(0o640), "ret": int64(fd), "ret_error": "",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("trace_open event (-want +got):\n%s", diff)
	}

	missing := path + ".missing"
	if _, err := unix.Open(missing, unix.O_RDONLY, 0); err == nil {
		t.Fatal("open of a missing file succeeded")
	}
	ev = c.waitFor(t, "failed open", func(ev map[string]any) bool { return ev["path"] == missing })
	if num(ev["ret"]) != -int64(unix.ENOENT) || ev["ret_error"] != "ENOENT" || ev["flags"] != "O_RDONLY" {
		t.Errorf("failed open: ret=%v ret_error=%v flags=%v, want -2 ENOENT O_RDONLY", ev["ret"], ev["ret_error"], ev["flags"])
	}
}

func TestTraceTCPConnect(t *testing.T) {
	_, c := startGadget(t, "trace_tcpconnect", nil, ParseOptions{}, nil)
	for _, tc := range []struct{ network, addr, family string }{
		{"tcp4", "127.0.0.1:0", "AF_INET"},
		{"tcp6", "[::1]:0", "AF_INET6"},
	} {
		t.Run(tc.family, func(t *testing.T) {
			ln, err := net.Listen(tc.network, tc.addr)
			if err != nil {
				t.Skipf("no %s loopback: %v", tc.network, err)
			}
			defer ln.Close()
			conn, err := net.Dial(tc.network, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			local := conn.LocalAddr().(*net.TCPAddr)
			remote := ln.Addr().(*net.TCPAddr)
			ev := c.waitFor(t, "connect to "+remote.String(), func(ev map[string]any) bool {
				return num(ev["dport"]) == int64(remote.Port) && num(ev["sport"]) == int64(local.Port)
			})
			checkEnvelope(t, ev, "trace_tcpconnect-src", "trace_tcpconnect")
			got := map[string]any{"pid": num(ev["pid"]), "comm": ev["comm"], "saddr": ev["saddr.addr"], "daddr": ev["daddr.addr"], "family": ev["family"]}
			want := map[string]any{"pid": int64(os.Getpid()), "comm": selfComm(), "saddr": local.IP.String(), "daddr": remote.IP.String(), "family": tc.family}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("trace_tcpconnect event (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTraceSignal(t *testing.T) {
	_, c := startGadget(t, "trace_signal", nil, ParseOptions{}, nil)
	child := exec.Command("/bin/sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	if err := unix.Kill(child.Process.Pid, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	ev := c.waitFor(t, "SIGUSR1 to the child", func(ev map[string]any) bool {
		return num(ev["tpid"]) == int64(child.Process.Pid) && ev["sig"] == "SIGUSR1"
	})
	checkEnvelope(t, ev, "trace_signal-src", "trace_signal")
	got := map[string]any{"pid": num(ev["pid"]), "comm": ev["comm"], "tpid": num(ev["tpid"]), "sig": ev["sig"], "sig_raw": num(ev["sig_raw"]), "ret": num(ev["ret"])}
	want := map[string]any{"pid": int64(os.Getpid()), "comm": selfComm(), "tpid": int64(child.Process.Pid), "sig": "SIGUSR1", "sig_raw": int64(unix.SIGUSR1), "ret": int64(0)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("trace_signal event (-want +got):\n%s", diff)
	}

	// A signal to a process that no longer exists fails with ESRCH.
	gone := child.Process.Pid
	if err := unix.Kill(gone, unix.SIGUSR2); err == nil {
		t.Skip("pid was reused before the test could signal it")
	}
	ev = c.waitFor(t, "SIGUSR2 to a dead pid", func(ev map[string]any) bool {
		return num(ev["tpid"]) == int64(gone) && ev["sig"] == "SIGUSR2"
	})
	if num(ev["ret"]) != -int64(unix.ESRCH) || ev["ret_error"] != "ESRCH" {
		t.Errorf("ret = %v (%v), want -3 (ESRCH)", ev["ret"], ev["ret_error"])
	}
}

// TestTraceSignalIgnoreSelf: by default a process signalling itself (as
// language runtimes do constantly) is left out, unless it failed; with
// ignore_self=false it is reported.
func TestTraceSignalIgnoreSelf(t *testing.T) {
	self := os.Getpid()
	for _, tc := range []struct {
		param      string
		wantSelfOK bool
	}{{"true", false}, {"false", true}} {
		t.Run("ignore_self="+tc.param, func(t *testing.T) {
			_, c := startGadget(t, "trace_signal", nil, ParseOptions{}, map[string]string{"ignore_self": tc.param})
			if err := unix.Kill(self, 0); err != nil { // succeeds: a self-signal
				t.Fatal(err)
			}
			if err := unix.Tgkill(self, 0x7ffffff0, unix.SIGUSR2); err == nil { // fails: always kept
				t.Fatal("tgkill to a missing thread succeeded")
			}
			// The failed call comes after the successful one, so once it is
			// here the successful one has been decided on.
			c.waitFor(t, "failed tgkill to self", func(ev map[string]any) bool {
				return num(ev["pid"]) == int64(self) && ev["sig"] == "SIGUSR2" && ev["ret_error"] == "ESRCH"
			})
			sawSelfOK := false
			for _, ev := range c.snapshot() {
				if num(ev["pid"]) == int64(self) && num(ev["tpid"]) == int64(self) && num(ev["sig_raw"]) == 0 && num(ev["ret"]) == 0 {
					sawSelfOK = true
				}
			}
			if sawSelfOK != tc.wantSelfOK {
				t.Errorf("kill(self, 0) reported = %v, want %v", sawSelfOK, tc.wantSelfOK)
			}
		})
	}
}

// TestSeqGapFree checks the per-source sequence numbers are consecutive.
func TestSeqGapFree(t *testing.T) {
	_, c := startGadget(t, "trace_open", nil, ParseOptions{}, map[string]string{"target_pid": strconv.Itoa(os.Getpid())})
	dir := t.TempDir()
	const n = 200
	for i := range n {
		fd, err := unix.Open(filepath.Join(dir, strconv.Itoa(i)), unix.O_RDONLY|unix.O_CREAT, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
	last := filepath.Join(dir, strconv.Itoa(n-1))
	c.waitFor(t, "last open", func(ev map[string]any) bool { return ev["path"] == last })
	c.mu.Lock()
	defer c.mu.Unlock()
	var seqs []uint64
	for _, ev := range c.raw {
		seqs = append(seqs, ev.Seq)
	}
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("seq %d at position %d: sequence has a gap or repeat (no loss was reported: %d)", s, i, c.lost)
		}
	}
	if len(seqs) < n {
		t.Fatalf("got %d events, want at least %d", len(seqs), n)
	}
}
