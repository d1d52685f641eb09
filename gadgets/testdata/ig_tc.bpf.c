// SPDX-License-Identifier: Apache-2.0
/*
 * An Inspektor Gadget-style TC classifier (section classifier/ingress/...):
 * one event per IPv4 packet entering the interfaces it is attached to:
 * addresses, IP protocol, length and the interface. It lets every packet
 * through (TCX_NEXT).
 */
#include <sluice/gadget.h>

#define ETH_HLEN 14
#define TCX_NEXT -1

struct packet_event {
	gadget_timestamp timestamp_raw;
	struct gadget_l3endpoint_t src;
	struct gadget_l3endpoint_t dst;
	__u8 proto_raw;
	__u32 len;
	__u32 ifindex;
};

GADGET_TRACER_MAP(events, 256 * 1024);
GADGET_TRACER(packets, events, packet_event);

SEC("classifier/ingress/packets")
int ig_tc_ingress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct packet_event e = {};
	__u8 *ip = data + ETH_HLEN;

	if (data + ETH_HLEN + 20 > end)
		return TCX_NEXT;
	if (*(__u16 *)(data + 12) != bpf_htons(0x0800))
		return TCX_NEXT;
	e.timestamp_raw = bpf_ktime_get_boot_ns();
	e.src.version = e.dst.version = 4;
	__builtin_memcpy(&e.src.addr_raw.v4, ip + 12, 4);
	__builtin_memcpy(&e.dst.addr_raw.v4, ip + 16, 4);
	e.proto_raw = ip[9];
	e.len = skb->len;
	e.ifindex = skb->ifindex;
	gadget_output_buf(skb, &events, &e, sizeof(e));
	return TCX_NEXT;
}

char LICENSE[] SEC("license") = "GPL";
