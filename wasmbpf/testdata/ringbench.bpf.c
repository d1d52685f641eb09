// SPDX-License-Identifier: Apache-2.0
/*
 * The load of the wasm-bpf throughput benchmark. A getppid(2) of the
 * process target_tgid fills the ring buffer `records` (bpf_loop, up to
 * BURST records) until a reserve fails; `state` then says how many were
 * produced and that the buffer is full. The benchmark fills the buffer
 * first and then times how fast a reader drains it into a pipeline, so
 * that the reader alone sets the rate. Wakeups follow sluice's gadget
 * header (one once 64 KiB wait). The same object runs as ringbench.wasm's
 * and as a plain gadget (target_tgid is also a GADGET_PARAM).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define BURST (1 << 20)

struct record {
	__u64 seq;
	__u32 pid;
	__u32 cpu;
	char comm[16];
	__u64 value;
};

struct state {
	__u64 produced;
	__u32 full;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} records SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct state);
} state SEC(".maps");

const volatile __u32 target_tgid = 0;
const void *gadget_param_target_tgid __attribute__((unused));
const struct record *unused_record __attribute__((unused));

struct loop_ctx {
	struct state *st;
};

static long produce(__u32 i, void *ctx)
{
	struct state *st = ((struct loop_ctx *)ctx)->st;
	__u64 flags = bpf_ringbuf_query(&records, BPF_RB_AVAIL_DATA) >= (64 << 10) ?
			      BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	struct record *r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);

	if (!r) {
		st->full = 1;
		return 1;
	}
	r->seq = __sync_fetch_and_add(&st->produced, 1);
	r->pid = target_tgid;
	r->cpu = bpf_get_smp_processor_id();
	bpf_get_current_comm(&r->comm, sizeof(r->comm));
	r->value = i;
	bpf_ringbuf_submit(r, flags);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int burst(void *ctx)
{
	__u32 zero = 0;
	struct state *st;

	if (bpf_get_current_pid_tgid() >> 32 != target_tgid)
		return 0;
	st = bpf_map_lookup_elem(&state, &zero);
	if (!st || st->full)
		return 0;
	struct loop_ctx c = {st};

	bpf_loop(BURST, produce, &c, 0);
	return 0;
}
