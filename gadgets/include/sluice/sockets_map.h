/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inspektor Gadget's socket enricher contract: map gadget_sockets, keyed by
 * a socket's (network namespace, family, protocol, local port), holds who
 * owns the socket (process, parent, mount namespace, uid/gid). sluice fills
 * it (sources/enricher.go); a gadget only looks sockets up.
 *
 * struct gadget_socket_value is not a kernel type and its layout is the
 * enricher's, not this header's: every member access is a CO-RE
 * relocation, resolved at load time against the BTF sluice supplies (as IG
 * does), so this declaration only needs the members' names and types.
 * struct gadget_socket_key is read as laid out here.
 *
 * Define GADGET_TYPE_NETWORKING (socket filters, TC) or GADGET_TYPE_TRACING
 * before including it for the matching gadget_socket_lookup().
 */
#ifndef __SLUICE_SOCKETS_MAP_H
#define __SLUICE_SOCKETS_MAP_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <sluice/types.h>

#ifndef IPPROTO_UDP
#define IPPROTO_UDP 17
#endif

struct gadget_socket_key {
	__u32 netns;
	__u16 family;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u16 port; /* host byte order */
};

struct gadget_socket_value {
	__u64 mntns;
	__u64 pid_tgid;
	__u64 uid_gid;
	char task[TASK_COMM_LEN];
	char ptask[TASK_COMM_LEN];
	__u64 sock;
	__u64 deletion_timestamp;
	__u32 ppid;
	__u32 ptid;
	char ipv6only;
} __attribute__((preserve_access_index));

#define GADGET_MAX_SOCKETS 16384
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GADGET_MAX_SOCKETS);
	__type(key, struct gadget_socket_key);
	__type(value, struct gadget_socket_value);
} gadget_sockets SEC(".maps");

#define GADGET_SE_ETH_HLEN 14
#define GADGET_SE_AF_INET 2
#define GADGET_SE_AF_INET6 10

#ifdef GADGET_TYPE_NETWORKING
/*
 * gadget_socket_lookup_with_direction finds the local socket of a packet:
 * its destination port when the packet comes in, its source port when it
 * goes out. skb->cb[0] holds the packet's network namespace (sluice's
 * dispatcher writes it before the gadget's program runs, as IG's does).
 */
static __always_inline struct gadget_socket_value *
gadget_socket_lookup_with_direction(const struct __sk_buff *skb, __u8 is_ingress)
{
	struct gadget_socket_key key = {};
	struct gadget_socket_value *ret;
	__u16 h_proto;
	__u8 ihl;
	int l4;

	key.netns = skb->cb[0];
	if (bpf_skb_load_bytes(skb, 12, &h_proto, 2))
		return 0;
	switch (bpf_ntohs(h_proto)) {
	case 0x0800:
		key.family = GADGET_SE_AF_INET;
		if (bpf_skb_load_bytes(skb, GADGET_SE_ETH_HLEN + 9, &key.proto, 1) ||
		    bpf_skb_load_bytes(skb, GADGET_SE_ETH_HLEN, &ihl, 1))
			return 0;
		l4 = GADGET_SE_ETH_HLEN + (ihl & 0xf) * 4;
		break;
	case 0x86DD:
		key.family = GADGET_SE_AF_INET6;
		if (bpf_skb_load_bytes(skb, GADGET_SE_ETH_HLEN + 6, &key.proto, 1))
			return 0;
		l4 = GADGET_SE_ETH_HLEN + 40; /* no extension headers */
		break;
	default:
		return 0;
	}
	if (key.proto != 6 && key.proto != IPPROTO_UDP)
		return 0;
	/* Source and destination ports are the first two 16-bit words of both
	 * TCP and UDP headers. */
	if (bpf_skb_load_bytes(skb, l4 + (is_ingress ? 2 : 0), &key.port, 2))
		return 0;
	key.port = bpf_ntohs(key.port);
	ret = bpf_map_lookup_elem(&gadget_sockets, &key);
	if (ret)
		return ret;
	/* An IPv4 packet may belong to a dual-stack IPv6 socket. */
	if (key.family == GADGET_SE_AF_INET) {
		key.family = GADGET_SE_AF_INET6;
		ret = bpf_map_lookup_elem(&gadget_sockets, &key);
		if (ret && !ret->ipv6only)
			return ret;
	}
	return 0;
}

/* gadget_socket_lookup tells the direction from skb->pkt_type (socket
 * filters; TC programs know their direction and use the function above). */
static __always_inline struct gadget_socket_value *gadget_socket_lookup(const struct __sk_buff *skb)
{
	return gadget_socket_lookup_with_direction(skb, skb->pkt_type != 4 /* PACKET_OUTGOING */);
}
#endif /* GADGET_TYPE_NETWORKING */

/* gadget_process_populate_from_socket fills IG's struct gadget_process from
 * an enricher entry (nothing when the socket is unknown). */
static __always_inline void gadget_process_populate_from_socket(const struct gadget_socket_value *v,
								struct gadget_process *p)
{
	if (!v)
		return;
	__builtin_memcpy(p->comm, v->task, sizeof(p->comm));
	p->pid = v->pid_tgid >> 32;
	p->tid = (__u32)v->pid_tgid;
	p->mntns_id = v->mntns;
	p->creds.uid = (__u32)v->uid_gid;
	p->creds.gid = v->uid_gid >> 32;
	__builtin_memcpy(p->parent.comm, v->ptask, sizeof(p->parent.comm));
	p->parent.pid = v->ppid;
}

#endif /* __SLUICE_SOCKETS_MAP_H */
