// SPDX-License-Identifier: Apache-2.0
/*
 * trace_bind: one event per bind(2) of an IPv4 or IPv6 socket: who is about
 * to listen or send from which address and port.
 *
 * Fields (struct event):
 *   timestamp  gadget_timestamp            boot time of the call's return
 *   mntns_id   gadget_mntns_id             mount namespace of the caller
 *   pid, tid   gadget_pid, gadget_tid      caller
 *   uid, gid   gadget_uid, gadget_gid      caller's credentials
 *   comm       char[16]                    caller's comm
 *   addr       struct gadget_l4endpoint_t  the address as passed (port 0
 *                                          asks the kernel for one), and
 *                                          the socket's protocol (TCP, UDP,
 *                                          ...)
 *   fd         __s32                       the socket's descriptor
 *   ret        gadget_ret                  0 or a negative errno
 *
 * Params: ignore_failed (bool, default false) drops binds that failed.
 *
 * Binds of other families (unix, netlink, packet) are not reported. The
 * address is read on entry, as the kernel copies it.
 */
#include <sluice/gadget.h>
#include <sluice/filter.h>

#define EBADF 9
#define ENOTSOCK 88

enum {
	FAMILY_INET = 2,
	FAMILY_INET6 = 10,
};

struct event {
	gadget_timestamp timestamp;
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_tid tid;
	gadget_uid uid;
	gadget_gid gid;
	gadget_comm comm[TASK_COMM_LEN];
	struct gadget_l4endpoint_t addr;
	__s32 fd;
	gadget_ret ret;
};

const volatile bool ignore_failed = false;
GADGET_PARAM(ignore_failed);

GADGET_TRACER_MAP(events, 1024 * 256);
GADGET_TRACER(trace_bind, events, event);

struct pending_bind {
	__s32 fd;
	__u16 family;
	__u16 port; /* network byte order */
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32); /* tid */
	__type(value, struct pending_bind);
} pending SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_bind")
int trace_enter_bind(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	const __u8 *uaddr = (const __u8 *)ctx->args[1];
	struct pending_bind p = { .fd = (__s32)ctx->args[0] };

	if (bpf_probe_read_user(&p.family, sizeof(p.family), uaddr))
		return 0;
	if (p.family != FAMILY_INET && p.family != FAMILY_INET6)
		return 0;
	if (gadget_should_discard_data_current())
		return 0;
	/* struct sockaddr_in: port at 2, address at 4; sockaddr_in6: port
	 * at 2, address at 8. */
	bpf_probe_read_user(&p.port, sizeof(p.port), uaddr + 2);
	if (p.family == FAMILY_INET)
		bpf_probe_read_user(p.addr, 4, uaddr + 4);
	else
		bpf_probe_read_user(p.addr, 16, uaddr + 8);
	bpf_map_update_elem(&pending, &tid, &p, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_bind")
int trace_exit_bind(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ugid = bpf_get_current_uid_gid();
	__u32 tid = (__u32)id;
	struct pending_bind *p;
	struct event *e;
	long ret = ctx->ret;

	p = bpf_map_lookup_elem(&pending, &tid);
	if (!p)
		return 0;
	if (ret < 0 && ignore_failed)
		goto out;
	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		goto out;
	__builtin_memset(e, 0, sizeof(*e));
	e->timestamp = bpf_ktime_get_boot_ns();
	e->mntns_id = gadget_get_current_mntns_id();
	e->pid = id >> 32;
	e->tid = tid;
	e->uid = (__u32)ugid;
	e->gid = ugid >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->fd = p->fd;
	e->ret = ret;
	e->addr.port = bpf_ntohs(p->port);
	if (p->family == FAMILY_INET) {
		__builtin_memcpy(&e->addr.addr_raw.v4, p->addr, 4);
		e->addr.version = 4;
	} else {
		__builtin_memcpy(e->addr.addr_raw.v6, p->addr, 16);
		e->addr.version = 6;
	}
	/* The descriptor is a socket unless the call said otherwise. */
	if (ret != -EBADF && ret != -ENOTSOCK) {
		struct sock *sk = gadget_get_current_sock(p->fd);

		if (sk)
			e->addr.proto_raw = BPF_CORE_READ(sk, sk_protocol);
	}
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
out:
	bpf_map_delete_elem(&pending, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
