// SPDX-License-Identifier: Apache-2.0
/*
 * One program per attach kind that this kernel supports besides
 * tracepoints, all feeding one tracer, for the attach tests:
 *   kind 1  raw_tp/sys_enter            getppid(2) of process target_pid
 *   kind 2  tp_btf/sched_process_exec   an exec by a child of target_pid
 *   kind 3  uprobe/libc:__libc_start_main   a child of target_pid starting
 *   kind 4  uretprobe/libc:setlocale        ... returning from setlocale(3)
 * "libc" in the uprobe sections is a library name that the loader resolves
 * on the host, so the object does not hard-code a distribution's path.
 */
#include <sluice/gadget.h>

struct event {
	gadget_pid pid;
	__u32 kind;
	gadget_comm comm[TASK_COMM_LEN];
};

const volatile __u32 target_pid = 0;
GADGET_PARAM(target_pid);

GADGET_TRACER_MAP(events, 256 * 1024);
GADGET_TRACER(attach_kinds, events, event);

#if defined(__TARGET_ARCH_arm64)
#define NR_getppid 173
#else
#define NR_getppid 110
#endif

static __always_inline int emit(void *ctx, __u32 kind)
{
	struct event *e = gadget_reserve_buf(&events, sizeof(*e));

	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->kind = kind;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

static __always_inline bool child_of_target(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, real_parent, tgid) == target_pid;
}

SEC("raw_tp/sys_enter")
int on_sys_enter(__u64 *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != target_pid || ctx[1] != NR_getppid)
		return 0;
	return emit(ctx, 1);
}

SEC("tp_btf/sched_process_exec")
int on_exec(__u64 *ctx)
{
	if (!child_of_target())
		return 0;
	return emit(ctx, 2);
}

SEC("uprobe/libc:__libc_start_main")
int on_libc_start(void *ctx)
{
	if (!child_of_target())
		return 0;
	return emit(ctx, 3);
}

SEC("uretprobe/libc:setlocale")
int on_setlocale_return(void *ctx)
{
	if (!child_of_target())
		return 0;
	return emit(ctx, 4);
}

char LICENSE[] SEC("license") = "GPL";
