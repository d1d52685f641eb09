// SPDX-License-Identifier: Apache-2.0
/*
 * trace_exit: one event per process exit (the last thread of a thread
 * group), with how it ended and how long it ran.
 *
 * Fields (struct event):
 *   timestamp    gadget_timestamp  boot time of the exit
 *   mntns_id     gadget_mntns_id   mount namespace of the process
 *   pid          gadget_pid        tgid
 *   tid          gadget_tid        the thread that exited last
 *   ppid         gadget_ppid       tgid of the parent
 *   uid, gid     gadget_uid/gid    credentials at exit
 *   comm         char[16]          comm of the exiting thread
 *   exit_code    __s32             the status passed to exit(), 0..255
 *                                  (0 when killed by a signal)
 *   signal       gadget_signal     the signal that killed it, 0 if none
 *   core_dumped  bool              whether it dumped core
 *   duration_ns  __u64             time since the process started
 *
 * Params: failed_only (bool, default false) keeps only exits with a
 * non-zero status or a signal.
 *
 * sched_process_exit fires once per thread. Kernels from 6.16 say in the
 * tracepoint whether the thread group died with it (group_dead); older ones
 * are asked through signal->live, which do_exit has already decremented for
 * this thread by the time the tracepoint runs. The exit status is the
 * task's exit_code, a wait(2) status: (code << 8) | signal | 0x80 for core.
 */
#include <sluice/gadget.h>
#include <sluice/filter.h>

struct event {
	gadget_timestamp timestamp;
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_tid tid;
	gadget_ppid ppid;
	gadget_uid uid;
	gadget_gid gid;
	gadget_comm comm[TASK_COMM_LEN];
	__s32 exit_code;
	gadget_signal signal;
	bool core_dumped;
	__u64 duration_ns;
};

const volatile bool failed_only = false;
GADGET_PARAM(failed_only);

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(trace_exit, events, event);

SEC("tracepoint/sched/sched_process_exit")
int trace_sched_process_exit(struct trace_event_raw_sched_process_exit *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ugid = bpf_get_current_uid_gid();
	struct event *e;
	bool group_dead;
	int code;

	if (bpf_core_field_exists(ctx->group_dead))
		group_dead = BPF_CORE_READ(ctx, group_dead);
	else
		group_dead = BPF_CORE_READ(task, signal, live.counter) == 0;
	if (!group_dead)
		return 0;
	code = BPF_CORE_READ(task, exit_code);
	if (failed_only && code == 0)
		return 0;
	if (gadget_should_discard_data_current())
		return 0;

	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		return 0;
	e->timestamp = bpf_ktime_get_boot_ns();
	e->mntns_id = gadget_get_current_mntns_id();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->ppid = gadget_get_current_ppid();
	e->uid = (__u32)ugid;
	e->gid = ugid >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->exit_code = (code >> 8) & 0xff;
	e->signal = code & 0x7f;
	e->core_dumped = (code & 0x80) != 0;
	e->duration_ns = e->timestamp - BPF_CORE_READ(task, group_leader, start_boottime);
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
