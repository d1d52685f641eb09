package sources

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestIGFieldsLive loads the IG-style gadget with a member of every special
// type, triggers it with getpgid(2), and checks the rendered event: the
// process, IG's renderings, a kernel stack symbolised with kallsyms, a user
// stack symbolised from this test binary, and ig_build_id, which the gadget
// declares with 0 entries, sized by its parameter before load.
func TestIGFieldsLive(t *testing.T) {
	pid := os.Getpid()
	g, c := startGadget(t, "ig_fields", testObject(t, "ig_fields"), ParseOptions{}, map[string]string{
		"target_tgid": strconv.Itoa(pid), "collect_ustack": "true", "collect_build_id": "true", "ig_build_id_max_entries": "64",
	})
	m, err := g.Map("ig_build_id")
	if err != nil {
		t.Fatal(err)
	}
	if m.MaxEntries() != 64 {
		t.Errorf("ig_build_id has %d entries, want 64 (ig_build_id_max_entries)", m.MaxEntries())
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // until the event is seen: the first call may race the attach
		for {
			select {
			case <-stop:
				return
			default:
				unix.Getpgid(0)
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	ev := c.waitFor(t, "ig_fields", func(ev map[string]any) bool { return num(ev["proc.pid"]) == int64(pid) })
	checkEnvelope(t, ev, "ig_fields-src", "ig_fields")
	want := map[string]any{
		"proc.comm": selfComm(), "proc.creds.uid": int64(os.Geteuid()), "proc.creds.gid": int64(os.Getegid()),
		"proc.parent.pid": int64(os.Getppid()), "proc.mntns_id": int64(nsInode(t, "/proc/self/ns/mnt")),
		"error": "ENOENT", "error_raw": int64(2), "sig": "SIGUSR1", "syscall": "SYS_GETPGID",
		"size": "10 kB", "latency": "1.50ms", "owner": "root", "owner_group": "gid:4242",
		"type": "EV_CLOSE", "flags": "FLAG_RD|FLAG_WR|FLAG_CREAT|FLAG_TRUNC",
		"local.addr": "127.0.0.1", "remote.addr": "::1", "remote.port": int64(53), "remote.proto": "UDP",
		"netns_id": int64(nsInode(t, "/proc/self/ns/net")), "calls": int64(7), "ok": true, "name": "ig-style",
	}
	if os.Geteuid() == 0 {
		want["proc.creds.user"] = "root"
	}
	for k, w := range want {
		got := ev[k]
		if _, isNum := w.(int64); isNum {
			got = num(got)
		}
		if got != w {
			t.Errorf("%s = %#v, want %#v", k, ev[k], w)
		}
	}
	if tid := num(ev["proc.tid"]); tid <= 0 {
		t.Errorf("proc.tid = %v", ev["proc.tid"])
	}
	ts, err := time.Parse("2006-01-02T15:04:05.000000000Z07:00", fmt.Sprint(ev["timestamp"]))
	if err != nil {
		t.Errorf("timestamp %v is not in IG's layout: %v", ev["timestamp"], err)
	} else if d := time.Since(ts); d < -2*time.Second || d > 30*time.Second {
		t.Errorf("timestamp %v is %v from now", ts, d)
	} else if num(ev["timestamp_raw"]) != ts.UnixNano() {
		t.Errorf("timestamp_raw = %v, want the wall-clock ns %d (IG rewrites it)", ev["timestamp_raw"], ts.UnixNano())
	}
	frame := "do_syscall_64"
	if runtime.GOARCH == "arm64" {
		frame = "el0_svc"
	}
	if ks := fmt.Sprint(ev["kstack"]); !strings.HasPrefix(ks, "[0]") || !strings.Contains(ks, frame) {
		t.Errorf("kstack = %q, want kallsyms frames including %s", ks, frame)
	}
	// go test strips the test binary's symbols: its frames are the binary
	// and the offset (it has no GNU build id either).
	if us := fmt.Sprint(ev["ustack"]); !strings.HasPrefix(us, "[0]") || !strings.Contains(us, ".test+0x") {
		t.Errorf("ustack = %q, want frames in this test binary", us)
	}
}

// TestIGUserStackSymbolised: a process calling getpgid through libc gets a
// user stack whose frame names libc's getpgid (resolved from its mappings
// and libc's symbols) and carries build ids where ELF notes give them.
func TestIGUserStackSymbolised(t *testing.T) {
	perl, err := exec.LookPath("perl")
	if err != nil {
		t.Skip("no perl to call getpgid through libc")
	}
	_, c := startGadget(t, "ig_fields", testObject(t, "ig_fields"), ParseOptions{}, map[string]string{
		"collect_ustack": "true", "collect_build_id": "true",
	})
	// perl's getpgrp(PID) is libc's getpgid(PID); the sleep keeps the
	// process (and its mappings) alive while the event is decoded.
	cmd := exec.Command(perl, "-e", `for (1..50) { getpgrp($$); select(undef, undef, undef, 0.02) }`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	ev := c.waitFor(t, "perl's getpgid", func(ev map[string]any) bool { return num(ev["proc.pid"]) == int64(cmd.Process.Pid) })
	if us := fmt.Sprint(ev["ustack"]); !strings.Contains(us, "getpgid+0x") {
		t.Errorf("ustack = %q, want libc's getpgid frame", us)
	}
}
