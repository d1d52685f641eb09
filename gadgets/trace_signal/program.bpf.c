// SPDX-License-Identifier: Apache-2.0
/*
 * trace_signal: one event per kill, tkill and tgkill call.
 *
 * Fields (struct event):
 *   timestamp  gadget_timestamp  boot time of the syscall's return
 *   mntns_id   gadget_mntns_id   mount namespace of the sender
 *   pid        gadget_pid        tgid of the sender
 *   uid        gadget_uid        sender's uid
 *   comm       char[16]          sender's comm
 *   tpid       __s32             the target as passed: kill's pid (0, -1 and
 *                                -pgid address groups), tkill's tid,
 *                                tgkill's tgid
 *   sig        gadget_signal     the signal (0 probes for existence)
 *   ret        gadget_ret        0, or a negative errno
 *
 * Params: failed_only (bool, default false) keeps only failed calls;
 * ignore_self (bool, default true) leaves out successful signals a process
 * sends to itself or to its calling thread: language runtimes send those
 * all the time (Go preempts goroutines with tgkill(self, tid, SIGURG),
 * hundreds of times a second), and they say nothing about other processes.
 */
#include <sluice/gadget.h>
#include <sluice/filter.h>

struct event {
	gadget_timestamp timestamp;
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_uid uid;
	gadget_comm comm[TASK_COMM_LEN];
	__s32 tpid;
	gadget_signal sig;
	gadget_ret ret;
};

const volatile bool failed_only = false;
GADGET_PARAM(failed_only);
const volatile bool ignore_self = true;
GADGET_PARAM(ignore_self);

GADGET_TRACER_MAP(events, 1024 * 256);
GADGET_TRACER(trace_signal, events, event);

struct pending_signal {
	__s32 tpid;
	__u32 sig;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32); /* tid */
	__type(value, struct pending_signal);
} pending SEC(".maps");

static __always_inline int enter_signal(__s32 tpid, __u32 sig)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct pending_signal p = { .tpid = tpid, .sig = sig };

	if (gadget_should_discard_data_current())
		return 0;
	bpf_map_update_elem(&pending, &tid, &p, BPF_ANY);
	return 0;
}

static __always_inline int exit_signal(void *ctx, long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct pending_signal *p;
	struct event *e;

	p = bpf_map_lookup_elem(&pending, &tid);
	if (!p)
		return 0;
	if (failed_only && ret >= 0)
		goto out;
	if (ignore_self && ret == 0 &&
	    ((__u32)p->tpid == (__u32)(id >> 32) || (__u32)p->tpid == tid))
		goto out;
	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		goto out;
	e->timestamp = bpf_ktime_get_boot_ns();
	e->mntns_id = gadget_get_current_mntns_id();
	e->pid = id >> 32;
	e->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->tpid = p->tpid;
	e->sig = p->sig;
	e->ret = ret;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
out:
	bpf_map_delete_elem(&pending, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_kill")
int trace_enter_kill(struct trace_event_raw_sys_enter *ctx)
{
	return enter_signal((__s32)ctx->args[0], ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_exit_kill")
int trace_exit_kill(struct trace_event_raw_sys_exit *ctx)
{
	return exit_signal(ctx, ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_tkill")
int trace_enter_tkill(struct trace_event_raw_sys_enter *ctx)
{
	return enter_signal((__s32)ctx->args[0], ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_exit_tkill")
int trace_exit_tkill(struct trace_event_raw_sys_exit *ctx)
{
	return exit_signal(ctx, ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_tgkill")
int trace_enter_tgkill(struct trace_event_raw_sys_enter *ctx)
{
	return enter_signal((__s32)ctx->args[0], ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_exit_tgkill")
int trace_exit_tgkill(struct trace_event_raw_sys_exit *ctx)
{
	return exit_signal(ctx, ctx->ret);
}

char LICENSE[] SEC("license") = "GPL";
