// SPDX-License-Identifier: Apache-2.0
/*
 * top_tcp: bytes each process sends and receives on each TCP connection: a
 * map of counters user space drains every interval (GADGET_MAPITER), so
 * each snapshot holds the traffic since the last.
 *
 * Key (struct conn_key):
 *   pid       gadget_pid                  the process
 *   src, dst  struct gadget_l4endpoint_t  local and remote endpoints
 * Value (struct conn_stat):
 *   comm      char[16]                    the process's comm
 *   mntns_id  gadget_mntns_id             its mount namespace
 *   sent      __u64                       bytes sent
 *   received  __u64                       bytes received
 *
 * Tracepoints: sock/sock_send_length and sock/sock_recv_length, which
 * report each socket send and receive in the caller's context (kernel
 * 6.4 and later), for TCP over IPv4 and IPv6.
 */
#include <sluice/gadget.h>
#include <sluice/filter.h>

struct conn_key {
	gadget_pid pid;
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
};

struct conn_stat {
	gadget_comm comm[TASK_COMM_LEN];
	gadget_mntns_id mntns_id;
	__u64 sent;
	__u64 received;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct conn_key);
	__type(value, struct conn_stat);
} stats SEC(".maps");
GADGET_MAPITER(tcp, stats);

/* Context of sock/sock_{send,recv}_length. */
struct trace_event_raw_sock_msg_length___sluice {
	struct trace_entry ent;
	void *sk;
	__u16 family;
	__u16 protocol;
	int ret;
	int flags;
} __attribute__((preserve_access_index));

#define MSG_PEEK 2

static __always_inline int account(struct trace_event_raw_sock_msg_length___sluice *ctx, bool send)
{
	struct sock *sk = ctx->sk;
	struct conn_key key;
	struct conn_stat *st;
	__u16 family = ctx->family;
	int ret = ctx->ret;

	if (ctx->protocol != IPPROTO_TCP || ret <= 0 || (ctx->flags & MSG_PEEK))
		return 0;
	if (family != 2 && family != 10)
		return 0;
	if (gadget_should_discard_data_current())
		return 0;
	/* Zeroed with its padding (inside the endpoints too): keys compare
	 * byte for byte. */
	__builtin_memset(&key, 0, sizeof(key));
	key.pid = bpf_get_current_pid_tgid() >> 32;
	key.src.proto_raw = key.dst.proto_raw = IPPROTO_TCP;
	key.src.port = BPF_CORE_READ(sk, __sk_common.skc_num);
	key.dst.port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == 2) {
		key.src.addr_raw.v4 = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		key.dst.addr_raw.v4 = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		key.src.version = key.dst.version = 4;
	} else {
		BPF_CORE_READ_INTO(&key.src.addr_raw.v6, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&key.dst.addr_raw.v6, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
		key.src.version = key.dst.version = 6;
	}
	st = bpf_map_lookup_elem(&stats, &key);
	if (!st) {
		struct conn_stat zero = {};

		bpf_get_current_comm(zero.comm, sizeof(zero.comm));
		zero.mntns_id = gadget_get_current_mntns_id();
		bpf_map_update_elem(&stats, &key, &zero, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&stats, &key);
		if (!st)
			return 0;
	}
	if (send)
		__sync_fetch_and_add(&st->sent, ret);
	else
		__sync_fetch_and_add(&st->received, ret);
	return 0;
}

SEC("tracepoint/sock/sock_send_length")
int top_tcp_send(struct trace_event_raw_sock_msg_length___sluice *ctx)
{
	return account(ctx, true);
}

SEC("tracepoint/sock/sock_recv_length")
int top_tcp_recv(struct trace_event_raw_sock_msg_length___sluice *ctx)
{
	return account(ctx, false);
}

char LICENSE[] SEC("license") = "GPL";
