package sources

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/sources/decode"
)

// Rendering hints on plain libbpf programs' events: string buffers with a
// count, wide integers and unions holding addresses, tagged unions.

// TestPlainStringsWithCount: execsnoop's records are variable-length, so
// the event type needs a hint, and its args are NUL-separated strings
// counted by args_count.
func TestPlainStringsWithCount(t *testing.T) {
	obj := libbpfObject(t, "execsnoop")
	_, err := ParseGadget("execsnoop", obj, ParseOptions{})
	if err == nil || !strings.Contains(err.Error(), "no constant record size") || !strings.Contains(err.Error(), "structs the programs use: event") {
		t.Fatalf("no hint: %v, want an error saying the records have no constant size and naming struct event", err)
	}
	hints := map[string]decode.FieldHint{"args": {As: decode.AsStrings, Count: "args_count"}}
	_, c := startGadget(t, "execsnoop", obj, ParseOptions{EventType: "event", Fields: hints}, map[string]string{"ignore_failed": "false"})
	_, plain := startGadget(t, "execsnoop", obj, ParseOptions{EventType: "event"}, nil)

	cmd := exec.Command("/bin/echo", "one", "two words", "", "three")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := int64(cmd.Process.Pid)
	ev := c.waitFor(t, "echo's exec", func(ev map[string]any) bool { return num(ev["pid"]) == pid })
	got := map[string]any{"args": ev["args"], "args_count": num(ev["args_count"]), "comm": ev["comm"], "ppid": num(ev["ppid"]), "retval": num(ev["retval"])}
	want := map[string]any{"args": []any{"/bin/echo", "one", "two words", "", "three"}, "args_count": int64(5), "comm": "echo", "ppid": int64(os.Getpid()), "retval": int64(0)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("execsnoop event with the strings hint (-want +got):\n%s", diff)
	}
	// Without the hint the buffer is a C string: its first argument.
	ev = plain.waitFor(t, "echo's exec, unhinted", func(ev map[string]any) bool { return num(ev["pid"]) == pid })
	if ev["args"] != "/bin/echo" {
		t.Errorf("args without a hint = %#v, want the C string /bin/echo", ev["args"])
	}

	// ignore_failed=false (an undeclared parameter) reports failed execs.
	missing := exec.Command("/nonexistent/sluice-test")
	_ = missing.Run()
	c.waitFor(t, "the failed exec", func(ev map[string]any) bool {
		l, _ := ev["args"].([]any)
		return num(ev["retval"]) == -2 && len(l) == 1 && l[0] == "/nonexistent/sluice-test"
	})
}

// tcpPair connects to a listener on addr and returns the client's and the
// listener's addresses.
func tcpPair(t *testing.T, network, addr string) (*net.TCPAddr, *net.TCPAddr) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	conn, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn.LocalAddr().(*net.TCPAddr), ln.Addr().(*net.TCPAddr)
}

// TestPlainWideIntAddresses: tcpstates keeps addresses in unsigned
// __int128 members beside a family; an IPv4 address fills only the first
// 4 bytes (the rest is what followed it in the kernel), so only the
// family says how to read it.
func TestPlainWideIntAddresses(t *testing.T) {
	_, c := startGadget(t, "tcpstates", libbpfObject(t, "tcpstates"), ParseOptions{}, nil)
	for _, tc := range []struct{ network, addr string }{{"tcp4", "127.0.0.1:0"}, {"tcp6", "[::1]:0"}} {
		t.Run(tc.network, func(t *testing.T) {
			local, remote := tcpPair(t, tc.network, tc.addr)
			ev := c.waitFor(t, "the connect's SYN_SENT", func(ev map[string]any) bool {
				return num(ev["dport"]) == int64(remote.Port) && num(ev["newstate"]) == 2
			})
			fam := int64(2)
			if tc.network == "tcp6" {
				fam = 10
			}
			got := map[string]any{"saddr": ev["saddr"], "daddr": ev["daddr"], "family": num(ev["family"]), "pid": num(ev["pid"])}
			want := map[string]any{"saddr": local.IP.String(), "daddr": remote.IP.String(), "family": fam, "pid": int64(os.Getpid())}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("tcpstates event (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPlainUnionAddressHint: tcpconnect's addresses are anonymous unions
// of an IPv4 and an IPv6 member tagged by af. Unhinted, both alternatives
// show; hinted, one address under the name the hint gives.
func TestPlainUnionAddressHint(t *testing.T) {
	obj := libbpfObject(t, "tcpconnect")
	me := strconv.Itoa(os.Getpid())
	hints := map[string]decode.FieldHint{
		"saddr_v6": {As: decode.AsIP, Family: "af", Name: "saddr"},
		"daddr_v4": {As: decode.AsIP, Family: "af", Name: "daddr"},
	}
	_, c := startGadget(t, "tcpconnect", obj, ParseOptions{Fields: hints}, map[string]string{"filter_pid": me})
	_, plain := startGadget(t, "tcpconnect", obj, ParseOptions{}, map[string]string{"filter_pid": me})
	for _, tc := range []struct{ network, addr string }{{"tcp4", "127.0.0.1:0"}, {"tcp6", "[::1]:0"}} {
		t.Run(tc.network, func(t *testing.T) {
			local, remote := tcpPair(t, tc.network, tc.addr)
			match := func(ev map[string]any) bool { return num(ev["dport"]) == int64(remote.Port) }
			ev := c.waitFor(t, "the connect", match)
			for _, k := range []string{"saddr_v4", "saddr_v6", "daddr_v4", "daddr_v6"} {
				if _, ok := ev[k]; ok {
					t.Errorf("hinted event has %s: %v", k, ev)
				}
			}
			if ev["saddr"] != local.IP.String() || ev["daddr"] != remote.IP.String() {
				t.Errorf("saddr, daddr = %v, %v; want %s, %s", ev["saddr"], ev["daddr"], local.IP, remote.IP)
			}
			ev = plain.waitFor(t, "the connect, unhinted", match)
			if _, ok := ev["saddr_v4"]; !ok {
				t.Errorf("unhinted event lacks saddr_v4: %v", ev)
			}
			if _, ok := ev["saddr_v6"]; !ok {
				t.Errorf("unhinted event lacks saddr_v6: %v", ev)
			}
		})
	}
}

// TestPlainTaggedUnion: procevents' kind says which alternative of u an
// event holds; hinted, only that one is rendered.
func TestPlainTaggedUnion(t *testing.T) {
	obj := libbpfObject(t, "procevents")
	me := strconv.Itoa(os.Getpid())
	hints := map[string]decode.FieldHint{"u": {Tag: "kind", Cases: map[string]string{"EVENT_EXEC": "exec", "2": "exit"}}}
	_, c := startGadget(t, "procevents", obj, ParseOptions{Fields: hints}, map[string]string{"targ_ppid": me})
	_, plain := startGadget(t, "procevents", obj, ParseOptions{}, map[string]string{"targ_ppid": me})
	cmd := exec.Command("/bin/sh", "-c", "exit 3")
	_ = cmd.Run()
	pid := int64(cmd.Process.Pid)

	exit := c.waitFor(t, "the exit", func(ev map[string]any) bool { return num(ev["pid"]) == pid && ev["kind"] == "EVENT_EXIT" })
	execEv := c.waitFor(t, "the exec", func(ev map[string]any) bool { return num(ev["pid"]) == pid && ev["kind"] == "EVENT_EXEC" })
	if num(exit["u.exit.code"]) != 3 || num(exit["u.exit.ts_ns"]) == 0 {
		t.Errorf("exit event = %v, want u.exit.code 3 and a time", exit)
	}
	if execEv["u.exec.filename"] != "/bin/sh" || num(execEv["u.exec.ppid"]) != int64(os.Getpid()) {
		t.Errorf("exec event = %v, want u.exec.filename /bin/sh and u.exec.ppid %d", execEv, os.Getpid())
	}
	for _, ev := range []map[string]any{exit, execEv} {
		for k := range ev {
			if strings.HasPrefix(k, "u.") && !strings.HasPrefix(k, "u."+map[string]string{"EVENT_EXIT": "exit", "EVENT_EXEC": "exec"}[ev["kind"].(string)]+".") {
				t.Errorf("%s event has the other alternative's %s: %v", ev["kind"], k, ev)
			}
		}
	}
	ev := plain.waitFor(t, "the exit, unhinted", func(ev map[string]any) bool { return num(ev["pid"]) == pid && ev["kind"] == "EVENT_EXIT" })
	if _, ok := ev["u.exec.filename"]; !ok {
		t.Errorf("unhinted exit event = %v, want every alternative", ev)
	}
}
