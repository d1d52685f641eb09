// SPDX-License-Identifier: Apache-2.0
/*
 * snapshot_socket: every TCP and UDP socket open now (IPv4 and IPv6), from
 * the tcp and udp iterators: listeners, connections and their owners' uid.
 *
 * Fields (struct socket_entry):
 *   netns_id  gadget_netns_id             network namespace
 *   src       struct gadget_l4endpoint_t  local address, port, protocol
 *   dst       struct gadget_l4endpoint_t  remote address and port
 *   state     enum socket_state           TCP state (LISTEN,
 *                                         ESTABLISHED, ...); UDP sockets
 *                                         read CLOSE, or ESTABLISHED when
 *                                         connected
 *   uid       gadget_uid                  the socket's owner
 *   ino       __u64                       the socket's inode: the
 *                                         socket:[N] of /proc/PID/fd
 *
 * Params: listening_only (bool, default false) keeps TCP listeners and
 * unconnected UDP sockets, the ports a host exposes.
 *
 * An iterator lists the sockets of the network namespace of the process
 * that reads it; sluice runs it in each network namespace it is given.
 */
#include <sluice/gadget.h>

enum socket_state {
	ESTABLISHED = 1,
	SYN_SENT = 2,
	SYN_RECV = 3,
	FIN_WAIT1 = 4,
	FIN_WAIT2 = 5,
	TIME_WAIT = 6,
	CLOSE = 7,
	CLOSE_WAIT = 8,
	LAST_ACK = 9,
	LISTEN = 10,
	CLOSING = 11,
	NEW_SYN_RECV = 12,
};

struct socket_entry {
	gadget_netns_id netns_id;
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	enum socket_state state;
	gadget_uid uid;
	__u64 ino;
};

const volatile bool listening_only = false;
GADGET_PARAM(listening_only);

GADGET_SNAPSHOTTER(sockets, socket_entry, snapshot_tcp, snapshot_udp);

/* Local CO-RE flavors of what vmlinux.h does not declare. */
struct bpf_iter_meta___sluice {
	struct seq_file *seq;
} __attribute__((preserve_access_index));

struct bpf_iter__tcp___sluice {
	struct bpf_iter_meta___sluice *meta;
	struct sock_common *sk_common;
	__u32 uid;
} __attribute__((preserve_access_index));

struct bpf_iter__udp___sluice {
	struct bpf_iter_meta___sluice *meta;
	struct sock *udp_sk; /* struct udp_sock starts with a struct sock */
	__u32 uid;
} __attribute__((preserve_access_index));

struct ns_common___sluice {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net___sluice {
	struct ns_common___sluice ns;
} __attribute__((preserve_access_index));

struct sock_common___sluice {
	unsigned char skc_state;
	struct {
		struct net___sluice *net;
	} skc_net;
} __attribute__((preserve_access_index));

struct socket___sluice {
	struct file *file;
} __attribute__((preserve_access_index));

struct sock___sluice {
	struct socket___sluice *sk_socket;
} __attribute__((preserve_access_index));

static __always_inline int emit(struct seq_file *seq, struct sock_common *skc, __u32 uid, __u16 proto)
{
	struct sock_common___sluice *sc = (struct sock_common___sluice *)skc;
	struct socket_entry e = {};
	__u16 family = BPF_CORE_READ(skc, skc_family);

	if (family != 2 && family != 10)
		return 0;
	e.state = BPF_CORE_READ(sc, skc_state);
	if (listening_only) {
		if (proto == IPPROTO_TCP && e.state != LISTEN)
			return 0;
		if (proto == IPPROTO_UDP && e.state == ESTABLISHED)
			return 0;
	}
	e.uid = uid;
	e.netns_id = BPF_CORE_READ(sc, skc_net.net, ns.inum);
	/* Time-wait and request sockets are smaller structs with no file. */
	if (e.state != TIME_WAIT && e.state != NEW_SYN_RECV)
		e.ino = BPF_CORE_READ((struct sock___sluice *)skc, sk_socket, file, f_inode, i_ino);
	e.src.proto_raw = e.dst.proto_raw = proto;
	e.src.port = BPF_CORE_READ(skc, skc_num);
	e.dst.port = bpf_ntohs(BPF_CORE_READ(skc, skc_dport));
	if (family == 2) {
		e.src.addr_raw.v4 = BPF_CORE_READ(skc, skc_rcv_saddr);
		e.dst.addr_raw.v4 = BPF_CORE_READ(skc, skc_daddr);
		e.src.version = e.dst.version = 4;
	} else {
		BPF_CORE_READ_INTO(&e.src.addr_raw.v6, skc, skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e.dst.addr_raw.v6, skc, skc_v6_daddr.in6_u.u6_addr8);
		e.src.version = e.dst.version = 6;
	}
	bpf_seq_write(seq, &e, sizeof(e));
	return 0;
}

SEC("iter/tcp")
int snapshot_tcp(struct bpf_iter__tcp___sluice *ctx)
{
	struct sock_common *skc = ctx->sk_common;

	if (!skc)
		return 0;
	return emit(ctx->meta->seq, skc, ctx->uid, IPPROTO_TCP);
}

SEC("iter/udp")
int snapshot_udp(struct bpf_iter__udp___sluice *ctx)
{
	struct sock *sk = ctx->udp_sk;

	if (!sk)
		return 0;
	return emit(ctx->meta->seq, (struct sock_common *)sk, ctx->uid, IPPROTO_UDP);
}

char LICENSE[] SEC("license") = "GPL";
