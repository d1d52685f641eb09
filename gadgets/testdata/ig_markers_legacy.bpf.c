// SPDX-License-Identifier: Apache-2.0
/*
 * Markers as older Inspektor Gadget headers emitted them, written out by
 * hand (sluice's header emits the current form): the snapshotter marker of
 * IG before GADGET_ITER (gadget_snapshotter_<name>___<struct>___<prog>),
 * and tracer and parameter markers as BTF decl tags (IG's newest form).
 * Used to test that every form is read.
 */
#include <sluice/gadget.h>

struct proc_entry {
	gadget_pid pid;
	gadget_comm comm[TASK_COMM_LEN];
};

struct event {
	gadget_pid pid;
};

/* IG < GADGET_ITER: GADGET_SNAPSHOTTER(procs, proc_entry, dump_procs). */
const struct proc_entry *unusedevent_procs___proc_entry __attribute__((unused));
const void *gadget_snapshotter_procs___proc_entry___dump_procs __attribute__((unused));

/* IG today: ig:tracer and ig:param decl tags. */
const int __ig_tracer_calls __attribute__((unused, btf_decl_tag("ig:tracer:calls___events___event"))) = 0;
const struct event *__gadget_tracer_type_calls __attribute__((unused));

const volatile __u32 only_pid = 0;
const int __ig_param_only_pid __attribute__((unused, btf_decl_tag("ig:param:only_pid"))) = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

SEC("iter/task")
int dump_procs(struct bpf_iter__task *ctx)
{
	struct task_struct___ig *task = (struct task_struct___ig *)ctx->task;
	struct proc_entry e = {};

	if (!task || task->pid != task->tgid)
		return 0;
	e.pid = task->tgid;
	BPF_CORE_READ_STR_INTO(&e.comm, task, comm);
	bpf_seq_write(ctx->meta->seq, &e, sizeof(e));
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	struct event e = {.pid = bpf_get_current_pid_tgid() >> 32};

	if (only_pid && e.pid != only_pid)
		return 0;
	bpf_ringbuf_output(&events, &e, sizeof(e), 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
