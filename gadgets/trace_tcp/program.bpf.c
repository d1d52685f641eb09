// SPDX-License-Identifier: Apache-2.0
/*
 * trace_tcp: TCP connections opened (connect, accept) and closed, with the
 * process that owns them, IPv4 and IPv6.
 *
 * Fields (struct event):
 *   timestamp  gadget_timestamp            boot time of emission
 *   mntns_id   gadget_mntns_id             owner's mount namespace
 *   pid, tid   gadget_pid, gadget_tid      owner: the process that
 *                                          connected or accepted
 *   uid, gid   gadget_uid, gadget_gid      owner's credentials
 *   comm       char[16]                    owner's comm
 *   type       enum tcp_event              connect, accept or close
 *   src        struct gadget_l4endpoint_t  local address and port
 *   dst        struct gadget_l4endpoint_t  remote address and port
 *
 * Select kinds of event on the host: --filter type==accept.
 *
 * How, on tracepoints only:
 *   connect  the socket's TCP_CLOSE -> TCP_SYN_SENT transition
 *            (sock/inet_sock_set_state) runs in the caller's context but
 *            before the local port is chosen: the event is built there and
 *            emitted when connect() returns (syscalls/sys_exit_connect) or
 *            at the socket's next state change, whichever comes first.
 *   accept   accept()/accept4() returning a socket (syscalls/sys_exit_
 *            accept*): the new socket is read from the caller's fd table.
 *   close    any transition to TCP_CLOSE except from TCP_LISTEN; it often
 *            runs in softirq context, so the owner recorded at connect or
 *            accept is used. A socket opened before the gadget started
 *            has no recorded owner: its close has pid 0 and an empty comm
 *            (and is left out when a filter is set, since it cannot be
 *            checked against one).
 */
#include <sluice/gadget.h>
#include <sluice/filter.h>

enum tcp_event {
	connect = 0,
	accept = 1,
	close = 2,
};

enum {
	FAMILY_INET = 2,
	FAMILY_INET6 = 10,
};

struct owner {
	gadget_mntns_id mntns_id;
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__u32 gid;
	char comm[TASK_COMM_LEN];
	bool discarded; /* filtered out: so are its later events */
};

struct event {
	gadget_timestamp timestamp;
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_tid tid;
	gadget_uid uid;
	gadget_gid gid;
	gadget_comm comm[TASK_COMM_LEN];
	enum tcp_event type;
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
};

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(trace_tcp, events, event);

/* Socket -> owner, from connect or accept to close. LRU: a socket whose
 * close is never seen must not hold an entry forever. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct owner);
} owners SEC(".maps");

/* Socket -> connect event waiting for its local port. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u64);
	__type(value, struct event);
} pending SEC(".maps");

/* Thread inside connect() -> its socket. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, __u64);
} connecting SEC(".maps");

static __always_inline void current_owner(struct owner *o)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ugid = bpf_get_current_uid_gid();

	o->mntns_id = gadget_get_current_mntns_id();
	o->pid = id >> 32;
	o->tid = (__u32)id;
	o->uid = (__u32)ugid;
	o->gid = ugid >> 32;
	bpf_get_current_comm(o->comm, sizeof(o->comm));
}

static __always_inline void fill_process(struct event *e, const struct owner *o)
{
	e->mntns_id = o->mntns_id;
	e->pid = o->pid;
	e->tid = o->tid;
	e->uid = o->uid;
	e->gid = o->gid;
	__builtin_memcpy(e->comm, o->comm, sizeof(e->comm));
}

static __always_inline void set_endpoint(struct gadget_l4endpoint_t *ep, __u16 family,
					 const void *v4, const void *v6, __u16 port)
{
	ep->port = port;
	ep->proto_raw = IPPROTO_TCP;
	if (family == FAMILY_INET) {
		bpf_probe_read_kernel(&ep->addr_raw.v4, 4, v4);
		ep->version = 4;
	} else {
		bpf_probe_read_kernel(ep->addr_raw.v6, 16, v6);
		ep->version = 6;
	}
}

static __always_inline void emit_connect(void *ctx, __u64 sk, struct event *e, __u16 sport)
{
	if (!e->src.port)
		e->src.port = sport;
	e->timestamp = bpf_ktime_get_boot_ns();
	gadget_output_buf(ctx, &events, e, sizeof(*e));
	bpf_map_delete_elem(&pending, &sk);
}

static __always_inline void on_connect(struct trace_event_raw_inet_sock_set_state *ctx, __u64 sk)
{
	struct owner o = {};
	struct event ev = {};

	current_owner(&o);
	o.discarded = gadget_should_discard_data_current();
	bpf_map_update_elem(&owners, &sk, &o, BPF_ANY);
	if (o.discarded)
		return;
	fill_process(&ev, &o);
	ev.type = connect;
	/* The verifier forbids loads through a ctx pointer moved by CO-RE
	 * arithmetic, so the addresses are copied with a helper. */
	set_endpoint(&ev.src, ctx->family, ctx->saddr, ctx->saddr_v6, ctx->sport);
	set_endpoint(&ev.dst, ctx->family, ctx->daddr, ctx->daddr_v6, ctx->dport);
	bpf_map_update_elem(&pending, &sk, &ev, BPF_ANY);
	bpf_map_update_elem(&connecting, &o.tid, &sk, BPF_ANY);
}

static __always_inline void on_close(struct trace_event_raw_inet_sock_set_state *ctx, __u64 sk)
{
	struct owner *o = bpf_map_lookup_elem(&owners, &sk);
	struct event *e;

	if (o && o->discarded)
		goto out;
	if (!o && gadget_should_discard_data(0, 0, 0, "", GADGET_INVALID_ID, GADGET_INVALID_ID))
		goto out;
	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		goto out;
	__builtin_memset(e, 0, sizeof(*e));
	if (o)
		fill_process(e, o);
	e->timestamp = bpf_ktime_get_boot_ns();
	e->type = close;
	set_endpoint(&e->src, ctx->family, ctx->saddr, ctx->saddr_v6, ctx->sport);
	set_endpoint(&e->dst, ctx->family, ctx->daddr, ctx->daddr_v6, ctx->dport);
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
out:
	bpf_map_delete_elem(&owners, &sk);
}

SEC("tracepoint/sock/inet_sock_set_state")
int trace_inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	__u64 sk = (__u64)ctx->skaddr;
	struct event *e;

	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	if (ctx->family != FAMILY_INET && ctx->family != FAMILY_INET6)
		return 0;
	if (ctx->oldstate == TCP_CLOSE && ctx->newstate == TCP_SYN_SENT) {
		on_connect(ctx, sk);
		return 0;
	}
	if (ctx->oldstate == TCP_SYN_SENT) {
		/* A connect() whose return was not seen (io_uring). */
		e = bpf_map_lookup_elem(&pending, &sk);
		if (e)
			emit_connect(ctx, sk, e, ctx->sport);
	}
	if (ctx->newstate == TCP_CLOSE && ctx->oldstate != TCP_LISTEN)
		on_close(ctx, sk);
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
	emit_connect(ctx, sk, e, BPF_CORE_READ(sock, __sk_common.skc_num));
	return 0;
}

static __always_inline int exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	struct sock *sock;
	struct owner o = {};
	struct event *e;
	__u16 family;
	__u64 sk;

	if (ctx->ret < 0)
		return 0;
	sock = gadget_get_current_sock(ctx->ret);
	if (!sock || BPF_CORE_READ(sock, sk_protocol) != IPPROTO_TCP)
		return 0;
	family = BPF_CORE_READ(sock, __sk_common.skc_family);
	if (family != FAMILY_INET && family != FAMILY_INET6)
		return 0;
	sk = (__u64)sock;
	current_owner(&o);
	o.discarded = gadget_should_discard_data_current();
	bpf_map_update_elem(&owners, &sk, &o, BPF_ANY);
	if (o.discarded)
		return 0;
	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	fill_process(e, &o);
	e->timestamp = bpf_ktime_get_boot_ns();
	e->type = accept;
	if (family == FAMILY_INET) {
		__u32 saddr = BPF_CORE_READ(sock, __sk_common.skc_rcv_saddr);
		__u32 daddr = BPF_CORE_READ(sock, __sk_common.skc_daddr);

		set_endpoint(&e->src, family, &saddr, NULL, 0);
		set_endpoint(&e->dst, family, &daddr, NULL, 0);
	} else {
		struct in6_addr saddr = BPF_CORE_READ(sock, __sk_common.skc_v6_rcv_saddr);
		struct in6_addr daddr = BPF_CORE_READ(sock, __sk_common.skc_v6_daddr);

		set_endpoint(&e->src, family, NULL, &saddr, 0);
		set_endpoint(&e->dst, family, NULL, &daddr, 0);
	}
	e->src.port = BPF_CORE_READ(sock, __sk_common.skc_num);
	e->dst.port = bpf_ntohs(BPF_CORE_READ(sock, __sk_common.skc_dport));
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int trace_exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	return exit_accept(ctx);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int trace_exit_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return exit_accept(ctx);
}

char LICENSE[] SEC("license") = "GPL";
