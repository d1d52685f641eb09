package sources

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testutil"
)

// ipCmd runs iproute2's ip, which the network tests use to make
// namespaces and veth pairs.
func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

var netnsSeq atomic.Uint32

// newNetNS creates a network namespace with loopback up, removed when the
// test ends, and returns its name and path.
func newNetNS(t *testing.T) (string, string) {
	t.Helper()
	testutil.RequireRoot(t, "create network namespaces")
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("the network tests need iproute2's ip (apt-get install iproute2)")
	}
	name := fmt.Sprintf("sluice-%d-%d", os.Getpid(), netnsSeq.Add(1))
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ipCmd(t, "-n", name, "link", "set", "lo", "up")
	return name, "/run/netns/" + name
}

// dnsQuery is a DNS query for name with the given id.
func dnsQuery(id uint16, name string) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0) // RD; one question
	for _, label := range strings.Split(name, ".") {
		b = append(b, byte(len(label)))
		b = append(b, label...)
	}
	return append(b, 0, 0, 1, 0, 1) // end of name, type A, class IN
}

// resolver answers every query on conn with an empty response (QR set).
func resolver(conn net.PacketConn) {
	buf := make([]byte, 512)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return
		}
		resp := append([]byte(nil), buf[:n]...)
		resp[2] |= 0x80
		conn.WriteTo(resp, from)
	}
}

// queryDNS sends one query to addr and waits for the answer.
func queryDNS(t *testing.T, addr string, id uint16, name string) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(dnsQuery(id, name)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 512)); err != nil {
		t.Fatalf("no answer from the test resolver: %v", err)
	}
}

func checkDNSEvents(t *testing.T, c *collector, resolverPort int, id uint16) {
	t.Helper()
	q := c.waitFor(t, "the query", func(ev map[string]any) bool {
		return num(ev["id"]) == int64(id) && ev["qr"] == "Q" && num(ev["dst.port"]) == int64(resolverPort)
	})
	if q["name"] != "example.com" || q["dst.proto"] != "UDP" || q["src.addr"] != "127.0.0.1" {
		t.Errorf("query event = %v, want name example.com over UDP from 127.0.0.1", q)
	}
	// The socket enricher knew the client socket from its connect(2).
	if num(q["proc.pid"]) != int64(os.Getpid()) || q["proc.comm"] != selfComm() {
		t.Errorf("query event's process = %v/%v, want this test (%d/%s), from the socket enricher", q["proc.pid"], q["proc.comm"], os.Getpid(), selfComm())
	}
	c.waitFor(t, "the response", func(ev map[string]any) bool {
		return num(ev["id"]) == int64(id) && ev["qr"] == "R" && num(ev["src.port"]) == int64(resolverPort)
	})
}

// TestSocketFilterSeesDNS: the socket filter, on a raw packet socket in the
// host's network namespace, sees a DNS query this test sends to a resolver
// it runs on loopback, and the answer.
func TestSocketFilterSeesDNS(t *testing.T) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go resolver(conn)
	port := conn.LocalAddr().(*net.UDPAddr).Port
	_, c := startGadget(t, "ig_dns", testObject(t, "ig_dns"), ParseOptions{}, map[string]string{"port": strconv.Itoa(port)})
	queryDNS(t, conn.LocalAddr().String(), 0x1234, "example.com")
	checkDNSEvents(t, c, port, 0x1234)
}

// TestSocketFilterInChosenNetns: with a network namespace given, the
// socket filter sees that namespace's packets: a query and its answer
// exchanged on the namespace's loopback.
func TestSocketFilterInChosenNetns(t *testing.T) {
	_, path := newNetNS(t)
	var conn net.PacketConn
	if err := inNetNS(path, func() (err error) {
		conn, err = net.ListenPacket("udp4", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go resolver(conn)
	port := conn.LocalAddr().(*net.UDPAddr).Port
	_, c := startGadgetWith(t, "ig_dns", testObject(t, "ig_dns"), ParseOptions{},
		GadgetConfig{Params: map[string]string{"port": strconv.Itoa(port)}, NetNS: []string{path}}, &collector{})
	if err := inNetNS(path, func() error { queryDNS(t, conn.LocalAddr().String(), 0x4321, "example.com"); return nil }); err != nil {
		t.Fatal(err)
	}
	checkDNSEvents(t, c, port, 0x4321)
}

// TestTCClassifierOnVeth: the classifier, attached with tcx to the host end
// of a veth pair whose other end is in a namespace this test creates, sees
// a packet sent from that namespace.
func TestTCClassifierOnVeth(t *testing.T) {
	ns, path := newNetNS(t)
	host := fmt.Sprintf("slh%d", os.Getpid()%100000)
	peer := fmt.Sprintf("sln%d", os.Getpid()%100000)
	ipCmd(t, "link", "add", host, "type", "veth", "peer", "name", peer, "netns", ns)
	t.Cleanup(func() { exec.Command("ip", "link", "del", host).Run() })
	ipCmd(t, "addr", "add", "10.251.0.1/30", "dev", host)
	ipCmd(t, "link", "set", host, "up")
	ipCmd(t, "-n", ns, "addr", "add", "10.251.0.2/30", "dev", peer)
	ipCmd(t, "-n", ns, "link", "set", peer, "up")
	iface, err := net.InterfaceByName(host)
	if err != nil {
		t.Fatal(err)
	}
	_, c := startGadgetWith(t, "ig_tc", testObject(t, "ig_tc"), ParseOptions{}, GadgetConfig{Ifaces: []string{host}}, &collector{})
	send := func() {
		inNetNS(path, func() error {
			conn, err := net.Dial("udp4", "10.251.0.1:9")
			if err == nil {
				conn.Write([]byte("sluice"))
				conn.Close()
			}
			return nil
		})
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // ARP first, then the packet: resend until seen
		for {
			select {
			case <-stop:
				return
			default:
				send()
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	ev := c.waitFor(t, "the UDP packet from the namespace", func(ev map[string]any) bool {
		return ev["src.addr"] == "10.251.0.2" && ev["dst.addr"] == "10.251.0.1" && num(ev["proto_raw"]) == 17
	})
	if num(ev["ifindex"]) != int64(iface.Index) {
		t.Errorf("ifindex = %v, want %d (%s)", ev["ifindex"], iface.Index, host)
	}
}

// TestTCClassifierNeedsAnInterface: a TC program without interfaces is an
// error that says what to give.
func TestTCClassifierNeedsAnInterface(t *testing.T) {
	testutil.RequireBPF(t)
	spec, err := ParseGadget("ig_tc", testObject(t, "ig_tc"), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGadget(spec, GadgetConfig{Source: "tc"})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	err = g.Open()
	if !errors.Is(err, ErrNoInterface) || !strings.Contains(err.Error(), "ig_tc_ingress") || !strings.Contains(err.Error(), "iface") {
		t.Errorf("Open = %v, want ErrNoInterface naming the program and the iface parameter", err)
	}
}

// TestPerfEventSamplesCPUStack: the perf_event program samples every CPU;
// while this test burns CPU, its stack-keyed map gets this process's
// samples, with the user stack symbolised from this binary.
func TestPerfEventSamplesCPUStack(t *testing.T) {
	me := os.Getpid()
	_, c := startGadgetWith(t, "ig_profile", testObject(t, "ig_profile"), ParseOptions{}, GadgetConfig{
		Params:          map[string]string{"target_tgid": strconv.Itoa(me), "collect_ustack": "true"},
		Interval:        200 * time.Millisecond,
		SampleFrequency: 499,
	}, &collector{})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		x := 0
		for {
			select {
			case <-stop:
				return
			default:
				for i := 0; i < 1e6; i++ {
					x += i
				}
			}
		}
	}()
	ev := c.waitFor(t, "a sample of this process", func(ev map[string]any) bool {
		return num(ev["pid"]) == int64(me) && num(ev["samples"]) > 0 && strings.HasPrefix(fmt.Sprint(ev["user_stack"]), "[0]")
	})
	if ev["comm"] == "" || num(ev["snapshot"]) < 1 {
		t.Errorf("sample row = %v", ev)
	}
}

// TestLSMRefusedSaysSo: on a kernel that refuses BPF LSM programs, loading
// one fails with an error saying the kernel refused LSM, not cilium/ebpf's
// MEMLOCK hint. (A kernel with BPF LSM loads it.)
func TestLSMRefusedSaysSo(t *testing.T) {
	testutil.RequireBPF(t)
	spec, err := ParseGadget("ig_lsm", testObject(t, "ig_lsm"), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGadget(spec, GadgetConfig{Source: "lsm"})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	err = g.Open()
	if err == nil {
		return
	}
	msg := err.Error()
	if !errors.Is(err, ErrKernelFeature) || !strings.Contains(msg, "refused an LSM program") || strings.Contains(msg, "MEMLOCK") || !strings.Contains(msg, "ig_lsm_open") {
		t.Errorf("Open = %v, want ErrKernelFeature naming the program and saying the kernel refused LSM", err)
	}
}

// TestSocketEnricherTracksSockets: the enricher's map holds a socket from
// its bind(2) on, with its owner, and forgets it a few syncs after it is
// closed.
func TestSocketEnricherTracksSockets(t *testing.T) {
	testutil.RequireBPF(t)
	m, _, err := enricher.acquire(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enricher.release()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(conn.LocalAddr().(*net.UDPAddr).Port)
	netns, err := netnsInode("")
	if err != nil {
		t.Fatal(err)
	}
	// struct gadget_socket_key: netns u32, family u16, proto u8, pad, port u16, pad.
	key := make([]byte, m.KeySize())
	binary.NativeEndian.PutUint32(key[0:], netns)
	binary.NativeEndian.PutUint16(key[4:], 2)
	key[6] = 17
	binary.NativeEndian.PutUint16(key[8:], port)
	value, err := m.LookupBytes(key)
	if err != nil || value == nil {
		t.Fatalf("the bound socket :%d is not in the map (%v)", port, err)
	}
	if pid := binary.NativeEndian.Uint64(value[8:]) >> 32; pid != uint64(os.Getpid()) {
		t.Errorf("owner pid = %d, want %d", pid, os.Getpid())
	}
	conn.Close()
	waitUntil(t, "the closed socket to leave the map", func() bool {
		v, err := m.LookupBytes(key)
		return err == nil && v == nil
	})
}
