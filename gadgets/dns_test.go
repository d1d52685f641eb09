package gadgets

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// startResolver runs a DNS server on UDP loopback that answers every
// question with NXDOMAIN, until the test ends, and returns its address.
func startResolver(t *testing.T) *net.UDPAddr {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			resp := append([]byte(nil), buf[:n]...)
			resp[2] = 0x81 // QR, RD
			resp[3] = 0x83 // RA, NXDOMAIN
			pc.WriteTo(resp, from)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr)
}

// packetSocket opens a packet socket seeing every packet of this network
// namespace, with prog attached as its socket filter.
func packetSocket(t *testing.T, prog *ebpf.Program) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, prog.FD()); err != nil {
		t.Fatalf("attach socket filter: %v", err)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func TestTraceDNS(t *testing.T) {
	requireBPF(t)
	server := startResolver(t)
	b, _ := Lookup("trace_dns")
	spec := loadSpec(t, b.Object)
	if err := spec.Variables["dns_port"].Set(uint16(server.Port)); err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			t.Fatalf("load: %+v", ve)
		}
		t.Fatal(err)
	}
	defer coll.Close()
	for _, p := range []struct{ group, name, prog string }{
		{"sock", "sock_send_length", "trace_dns_udp_send"},
		{"syscalls", "sys_enter_connect", "trace_dns_enter_connect"},
		{"syscalls", "sys_exit_connect", "trace_dns_exit_connect"},
	} {
		tp, err := link.Tracepoint(p.group, p.name, coll.Programs[p.prog], nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tp.Close()
	}
	packetSocket(t, coll.Programs["trace_dns_packets"])
	rd, err := ringbuf.NewReader(coll.Maps["events"])
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var st *btf.Struct
	if err := spec.Types.TypeByName("event", &st); err != nil {
		t.Fatal(err)
	}
	g := &gadget{rd: rd, fields: map[string]btf.Member{}, size: int(st.Size)}
	for _, m := range st.Members {
		g.fields[m.Name] = m
	}

	const name = "sluice-dns-test.example"
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp4", server.String())
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.LookupIP(ctx, "ip4", name); err == nil {
		t.Fatal("the resolver answered NXDOMAIN, yet the lookup succeeded")
	}

	const query, response = 0, 1
	const typeA, nxdomain = 1, 3
	q := g.next(t, "the query", func(r record) bool {
		return r.u32("qr") == query && r.str("name", 256) == name+"."
	})
	if q.u32("qtype") != typeA || q.u32("pid") != uint32(os.Getpid()) || int(q.u16at("dst", 16)) != server.Port {
		t.Errorf("query: qtype %d pid %d dst port %d, want A (1), %d, %d", q.u32("qtype"), q.u32("pid"), q.u16at("dst", 16), os.Getpid(), server.Port)
	}
	id := q.u16("id")
	resp := g.next(t, "the response", func(r record) bool {
		return r.u32("qr") == response && r.u16("id") == id
	})
	if resp.u32("rcode") != nxdomain || resp.str("name", 256) != name+"." || resp.u32("pid") != uint32(os.Getpid()) {
		t.Errorf("response: rcode %d name %q pid %d, want NXDOMAIN (3), %q, %d", resp.u32("rcode"), resp.str("name", 256), resp.u32("pid"), name+".", os.Getpid())
	}
	if lat := resp.u64("latency_ns"); lat == 0 || lat > uint64(5*time.Second) {
		t.Errorf("latency_ns = %d, want the time the answer took", lat)
	}
	if binary.LittleEndian.Uint32(resp.raw[resp.off("src"):]) != 0x0100007f || resp.u8at("src", 20) != 4 {
		t.Errorf("response source is not 127.0.0.1 over IPv4")
	}

	// Each loopback packet is reported once, not twice.
	dups := 0
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		rd.SetDeadline(time.Now().Add(20 * time.Millisecond))
		rec, err := rd.Read()
		if err != nil {
			continue
		}
		r := record{g: g, raw: rec.RawSample}
		if r.u16("id") == id && strings.HasPrefix(r.str("name", 256), name) {
			dups++
		}
	}
	if dups > 0 {
		t.Errorf("%d more events with the query's id: loopback packets counted twice", dups)
	}
}
