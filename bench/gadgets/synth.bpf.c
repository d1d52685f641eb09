// SPDX-License-Identifier: Apache-2.0
/*
 * synth: the synthetic gadget of `make bench` and `make soak`, a producer
 * that is not bound by syscall cost. A process calls getpgid(2) with
 * SYNTH_MAGIC in the upper 32 bits of the argument and a count N (at most
 * SYNTH_MAX_BURST) in the lower 32; the program then writes N records of
 * RECORD_SIZE bytes into its ring buffer in one bpf_loop, so a record costs
 * a reserve and a submit, not a syscall. Wakeups are batched by the gadget
 * header (GADGET_WAKEUP_BYTES), as in the built-in gadgets.
 *
 * Every record the program tries to write has its number (kseq): a call
 * takes a range of N numbers from a global counter before its first
 * reserve, so a record the kernel could not hand over (counted in
 * events_lost_samples) leaves a gap in kseq, and the numbers delivered plus
 * the losses counted add up to the highest kseq. The records of one call
 * share their timestamp (taken once: the call lasts microseconds), so that
 * a record costs little more than its reserve and submit.
 *
 * Param target_tgid (u32, 0 = any process): only that process's calls
 * make records, so that two agents (a benchmark and a test, say) each
 * loading the gadget do not get each other's records.
 *
 * It takes the filter contract (sluice/filter.h) as the built-in gadgets
 * do, checked once per call: the agent's own events (filter_self) and the
 * other process filters are left out in the kernel, not by a host-side
 * filter stage that a real gadget would not have.
 *
 * Built twice by gadgets/build.sh: synth64.bpf.o (RECORD_SIZE 64) and
 * synth256.bpf.o (RECORD_SIZE 256, with a path string as trace_open has).
 */
#include <sluice/gadget.h>
#include <sluice/filter.h>

#ifndef RECORD_SIZE
#define RECORD_SIZE 64
#endif

#define SYNTH_MAGIC 0x5e1cbe7cULL
#define SYNTH_MAX_BURST 4096

struct event {
	gadget_timestamp timestamp;
	__u64 kseq;
	gadget_pid pid;
	gadget_tid tid;
	gadget_comm comm[TASK_COMM_LEN];
	__u32 burst;  /* records the call asked for */
	__u32 index;  /* this record's place in its burst */
#if RECORD_SIZE == 64
	__u64 value;  /* kseq * 2654435761: something that is not a copy */
	__u64 flags;
#elif RECORD_SIZE == 256
	char path[208];
#else
#error RECORD_SIZE must be 64 or 256
#endif
};

_Static_assert(sizeof(struct event) == RECORD_SIZE, "struct event has the wrong size");

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(synth, events, event);

const volatile __u32 target_tgid = 0;
GADGET_PARAM(target_tgid);

__u64 next_kseq = 0;

#if RECORD_SIZE == 256
/* 47 characters: a path as long as a typical one in trace_open's events. */
static const char synth_path[] = "/var/lib/sluice/bench/synthetic/record/data.db";
#endif

struct burst {
	__u64 timestamp, kseq0;
	__u32 pid, tid, n;
	char comm[TASK_COMM_LEN];
};

static long emit_one(__u64 index, void *data)
{
	struct burst *b = data;
	__u64 kseq = b->kseq0 + index;
	struct event *e = gadget_reserve_buf(&events, sizeof(*e));

	if (!e)
		return 0; /* counted; kseq has a gap */
	e->timestamp = b->timestamp;
	e->kseq = kseq;
	e->pid = b->pid;
	e->tid = b->tid;
	__builtin_memcpy(e->comm, b->comm, sizeof(e->comm));
	e->burst = b->n;
	e->index = index;
#if RECORD_SIZE == 64
	e->value = kseq * 2654435761ULL;
	e->flags = 0;
#else
	__builtin_memset(e->path, 0, sizeof(e->path));
	__builtin_memcpy(e->path, synth_path, sizeof(synth_path));
#endif
	gadget_submit_buf(NULL, &events, e, sizeof(*e));
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpgid")
int synth_burst(struct trace_event_raw_sys_enter *ctx)
{
	__u64 arg = ctx->args[0];
	struct burst b = {};
	__u64 id;

	if (arg >> 32 != SYNTH_MAGIC)
		return 0;
	b.n = (__u32)arg;
	if (b.n > SYNTH_MAX_BURST)
		b.n = SYNTH_MAX_BURST;
	id = bpf_get_current_pid_tgid();
	if (target_tgid && target_tgid != id >> 32)
		return 0;
	if (gadget_should_discard_data_current())
		return 0;
	b.pid = id >> 32;
	b.tid = (__u32)id;
	bpf_get_current_comm(b.comm, sizeof(b.comm));
	b.kseq0 = __sync_fetch_and_add(&next_kseq, b.n) + 1;
	b.timestamp = bpf_ktime_get_boot_ns();
	bpf_loop(b.n, emit_one, &b, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
