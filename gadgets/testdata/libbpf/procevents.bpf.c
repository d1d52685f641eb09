// SPDX-License-Identifier: Apache-2.0
/*
 * Process events in one ring buffer, tagged: kind says whether u holds an
 * exec (parent and file name) or an exit (code and time). Rendered without
 * a hint, every event shows both alternatives, one of them garbage.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "procevents.h"

const volatile pid_t targ_ppid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} rb SEC(".maps");

static __always_inline bool wanted(struct task_struct *task)
{
	return !targ_ppid || BPF_CORE_READ(task, real_parent, tgid) == targ_ppid;
}

SEC("tracepoint/syscalls/sys_enter_execve")
int handle_exec(struct trace_event_raw_sys_enter *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct event *e;

	if (!wanted(task))
		return 0;
	e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
	if (!e)
		return 0;
	e->kind = EVENT_EXEC;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->u.exec.ppid = BPF_CORE_READ(task, real_parent, tgid);
	bpf_probe_read_user_str(e->u.exec.filename, sizeof(e->u.exec.filename), (const char *)ctx->args[0]);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_exit_group")
int handle_exit(struct trace_event_raw_sys_enter *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct event *e;

	if (!wanted(task))
		return 0;
	e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
	if (!e)
		return 0;
	/* The reserved record is not zeroed: bytes of the exec alternative
	 * keep whatever an earlier record left there. */
	e->kind = EVENT_EXIT;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->u.exit.code = (int)ctx->args[0];
	e->u.exit.ts_ns = bpf_ktime_get_ns();
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
