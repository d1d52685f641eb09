// SPDX-License-Identifier: Apache-2.0
/*
 * trace_tcpconnect: one event per active TCP connection attempt (IPv4 and
 * IPv6), whether or not it succeeds.
 *
 * Fields (struct event):
 *   timestamp  gadget_timestamp            boot time of emission
 *   mntns_id   gadget_mntns_id             mount namespace of the caller
 *   pid        gadget_pid                  tgid of the connecting process
 *   uid        gadget_uid                  its uid
 *   comm       char[16]                    its comm
 *   saddr      struct gadget_l3endpoint_t  local address
 *   daddr      struct gadget_l3endpoint_t  remote address
 *   sport      __u16                       local port (host byte order)
 *   dport      __u16                       remote port (host byte order)
 *   family     enum family                 AF_INET or AF_INET6
 *
 * The socket moves TCP_CLOSE -> TCP_SYN_SENT inside connect(), in the
 * caller's context, but before the kernel picks the local port. So the event
 * is built there (who connects, where to) and kept by socket; it is emitted
 * when connect() returns (the port is then set on the socket), or at the
 * socket's next state change if connect() is not seen to return (io_uring),
 * whichever comes first. Nothing waits for the handshake.
 */
#include <sluice/gadget.h>
#include <sluice/filter.h>

enum family {
	AF_INET = 2,
	AF_INET6 = 10,
};

struct event {
	gadget_timestamp timestamp;
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_uid uid;
	gadget_comm comm[TASK_COMM_LEN];
	struct gadget_l3endpoint_t saddr;
	struct gadget_l3endpoint_t daddr;
	__u16 sport;
	__u16 dport;
	enum family family;
};

GADGET_TRACER_MAP(events, 1024 * 256);
GADGET_TRACER(trace_tcpconnect, events, event);

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u64); /* skaddr */
	__type(value, struct event);
} pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);   /* tid inside connect() */
	__type(value, __u64); /* skaddr */
} connecting SEC(".maps");

static __always_inline void emit(void *ctx, __u64 sk, struct event *e, __u16 sport)
{
	if (!e->sport)
		e->sport = sport;
	e->timestamp = bpf_ktime_get_boot_ns();
	gadget_output_buf(ctx, &events, e, sizeof(*e));
	bpf_map_delete_elem(&pending, &sk);
}

SEC("tracepoint/sock/inet_sock_set_state")
int trace_inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	__u64 sk = (__u64)ctx->skaddr;
	struct event *e;

	if (ctx->protocol != IPPROTO_TCP)
		return 0;

	if (ctx->oldstate != TCP_CLOSE || ctx->newstate != TCP_SYN_SENT) {
		/* Fallback for a connect() whose return we did not see. */
		if (ctx->oldstate == TCP_SYN_SENT) {
			e = bpf_map_lookup_elem(&pending, &sk);
			if (e)
				emit(ctx, sk, e, ctx->sport);
		}
		return 0;
	}

	struct event ev = {};
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;

	if (gadget_should_discard_data_current())
		return 0;
	ev.pid = id >> 32;
	ev.uid = (__u32)bpf_get_current_uid_gid();
	ev.mntns_id = gadget_get_current_mntns_id();
	bpf_get_current_comm(ev.comm, sizeof(ev.comm));
	ev.sport = ctx->sport;
	ev.dport = ctx->dport;
	ev.family = ctx->family;
	/* The verifier forbids loads through a ctx pointer moved by CO-RE
	 * arithmetic, so copy the address arrays with a helper. */
	if (ctx->family == AF_INET) {
		bpf_probe_read_kernel(&ev.saddr.addr_raw.v4, 4, ctx->saddr);
		bpf_probe_read_kernel(&ev.daddr.addr_raw.v4, 4, ctx->daddr);
		ev.saddr.version = ev.daddr.version = 4;
	} else if (ctx->family == AF_INET6) {
		bpf_probe_read_kernel(ev.saddr.addr_raw.v6, 16, ctx->saddr_v6);
		bpf_probe_read_kernel(ev.daddr.addr_raw.v6, 16, ctx->daddr_v6);
		ev.saddr.version = ev.daddr.version = 6;
	} else {
		return 0;
	}
	bpf_map_update_elem(&pending, &sk, &ev, BPF_ANY);
	bpf_map_update_elem(&connecting, &tid, &sk, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int trace_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct sock *sock;
	struct event *e;
	__u64 *skp, sk;

	skp = bpf_map_lookup_elem(&connecting, &tid);
	if (!skp)
		return 0;
	sk = *skp;
	bpf_map_delete_elem(&connecting, &tid);
	e = bpf_map_lookup_elem(&pending, &sk);
	if (!e)
		return 0; /* already emitted by a state change */
	sock = (struct sock *)sk;
	emit(ctx, sk, e, BPF_CORE_READ(sock, __sk_common.skc_num));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
