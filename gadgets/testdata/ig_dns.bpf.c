// SPDX-License-Identifier: Apache-2.0
/*
 * An Inspektor Gadget-style socket filter, after IG's trace_dns: one event
 * per UDP packet to or from port `port` (53 by default) seen by a raw packet
 * socket in the gadget's network namespace(s): endpoints, the DNS id,
 * whether it is a query or a response, the first question's name, the
 * packet's direction, and the process owning the local socket, from
 * Inspektor Gadget's socket enricher map (gadget_sockets).
 */
#define GADGET_TYPE_NETWORKING
#include <sluice/gadget.h>
#include <sluice/sockets_map.h>

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define NAME_LEN 64

const volatile __u16 port = 53;
GADGET_PARAM(port);

enum pkt_type_t {
	HOST = 0,
	BROADCAST = 1,
	MULTICAST = 2,
	OTHERHOST = 3,
	OUTGOING = 4,
};

enum qr_t {
	Q = 0,
	R = 1,
};

struct dns_event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	enum pkt_type_t pkt_type_raw;
	enum qr_t qr_raw;
	__u16 id;
	char name[NAME_LEN];
};

GADGET_TRACER_MAP(events, 256 * 1024);
GADGET_TRACER(dns, events, dns_event);

/* dns_event is too large for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dns_event);
} scratch SEC(".maps");

SEC("socket1")
int ig_trace_dns(struct __sk_buff *skb)
{
	__u16 proto, sport, dport;
	__u8 ip_proto, ihl;
	__u32 l4, zero = 0;
	struct dns_event *e;
	__u8 flags;

	if (bpf_skb_load_bytes(skb, 12, &proto, 2))
		return 0;
	proto = bpf_ntohs(proto);
	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	if (proto == ETH_P_IP) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ihl, 1) || bpf_skb_load_bytes(skb, ETH_HLEN + 9, &ip_proto, 1))
			return 0;
		l4 = ETH_HLEN + (ihl & 0xf) * 4;
		e->src.version = e->dst.version = 4;
		bpf_skb_load_bytes(skb, ETH_HLEN + 12, &e->src.addr_raw.v4, 4);
		bpf_skb_load_bytes(skb, ETH_HLEN + 16, &e->dst.addr_raw.v4, 4);
	} else if (proto == ETH_P_IPV6) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN + 6, &ip_proto, 1))
			return 0;
		l4 = ETH_HLEN + 40;
		e->src.version = e->dst.version = 6;
		bpf_skb_load_bytes(skb, ETH_HLEN + 8, e->src.addr_raw.v6, 16);
		bpf_skb_load_bytes(skb, ETH_HLEN + 24, e->dst.addr_raw.v6, 16);
	} else {
		return 0;
	}
	if (ip_proto != IPPROTO_UDP)
		return 0;
	if (bpf_skb_load_bytes(skb, l4, &sport, 2) || bpf_skb_load_bytes(skb, l4 + 2, &dport, 2))
		return 0;
	sport = bpf_ntohs(sport);
	dport = bpf_ntohs(dport);
	if (sport != port && dport != port)
		return 0;
	e->src.port = sport;
	e->dst.port = dport;
	e->src.proto_raw = e->dst.proto_raw = IPPROTO_UDP;
	e->pkt_type_raw = skb->pkt_type;
	/* DNS header: id, flags (QR is the top bit), counts; then the name. */
	if (bpf_skb_load_bytes(skb, l4 + 8, &e->id, 2) || bpf_skb_load_bytes(skb, l4 + 10, &flags, 1))
		return 0;
	e->id = bpf_ntohs(e->id);
	e->qr_raw = flags >> 7;
	/* The name ends where the packet may: load only what is there. */
	__u32 avail = skb->len > l4 + 20 ? skb->len - (l4 + 20) : 0;
	if (avail > NAME_LEN - 1)
		avail = NAME_LEN - 1;
	if (avail > 0) /* 1..63, in a form the verifier can bound */
		bpf_skb_load_bytes(skb, l4 + 20, e->name, ((avail - 1) & 0x3f) + 1);
	/* Labels to dots: "\7example\3com\0" -> "example.com". */
	__u32 next = 0;
	for (__u32 i = 0; i < NAME_LEN - 1; i++) {
		__u8 c = e->name[i];
		if (i == next) {
			if (c == 0)
				break;
			next = i + c + 1;
			e->name[i] = i == 0 ? 0 : '.';
		}
	}
	/* Drop the leading NUL left by the first label's length. */
	for (__u32 i = 0; i < NAME_LEN - 1; i++)
		e->name[i] = e->name[i + 1];
	e->name[NAME_LEN - 1] = 0;
	gadget_process_populate_from_socket(gadget_socket_lookup(skb), &e->proc);
	e->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_output_buf(skb, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
