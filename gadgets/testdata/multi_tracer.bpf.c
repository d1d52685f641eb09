// SPDX-License-Identifier: Apache-2.0
/*
 * A gadget with two tracers on two kinds of output, for tests:
 *   tracer "ppid": ring buffer ring_a, struct a_event, one record per
 *                  getppid(2) call of process target_pid;
 *   tracer "pgid": perf event array perf_b, struct b_event (with a large
 *                  hidden pad, so a small perf buffer overflows quickly),
 *                  one record per getpgid(2) call of process target_pid.
 * The string parameter `tag` is copied into every a_event.
 */
#include <sluice/gadget.h>

struct a_event {
	gadget_pid pid;
	gadget_comm comm[TASK_COMM_LEN];
	char tag[16];
};

struct b_event {
	gadget_pid pid;
	__u32 arg;
	__u8 __pad[1024];
};

const volatile __u32 target_pid = 0;
GADGET_PARAM(target_pid);
const volatile char tag[16] = "default";
GADGET_PARAM(tag);

GADGET_TRACER_MAP(ring_a, 256 * 1024);
GADGET_TRACER(ppid, ring_a, a_event);

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_b SEC(".maps");
GADGET_TRACER(pgid, perf_b, b_event);

/* The kernel reports perf losses only when the next record of that CPU
 * fits, so a burst's tail would go unreported; counting failed outputs
 * here makes the count exact, and sluice then trusts this counter. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} perf_b_lost_samples SEC(".maps");

/* Per-CPU scratch space: b_event is too large for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct b_event);
} scratch SEC(".maps");

static __always_inline bool wanted(void)
{
	return target_pid == 0 || (bpf_get_current_pid_tgid() >> 32) == target_pid;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	struct a_event *e;

	if (!wanted())
		return 0;
	e = gadget_reserve_buf(&ring_a, sizeof(*e));
	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	/* Read through the volatile: a memcpy that casts it away lets the
	 * compiler fold in the initializer instead of the value user space
	 * set before load. */
	for (int i = 0; i < sizeof(e->tag); i++)
		e->tag[i] = tag[i];
	gadget_submit_buf(ctx, &ring_a, e, sizeof(*e));
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpgid")
int on_getpgid(struct trace_event_raw_sys_enter *ctx)
{
	__u32 zero = 0;
	struct b_event *e;

	if (!wanted())
		return 0;
	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->arg = (__u32)ctx->args[0];
	if (bpf_perf_event_output(ctx, &perf_b, BPF_F_CURRENT_CPU, e, sizeof(*e)))
		__sluice_count_lost(&perf_b_lost_samples);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
