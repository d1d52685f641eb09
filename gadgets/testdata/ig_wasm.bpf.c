// SPDX-License-Identifier: Apache-2.0
/*
 * An Inspektor Gadget-style tracer for the tests of IG's wasm API: its
 * modules (wasmstages/testdata/ig_wasm_go, ig_wasm_c.c) drop events, add
 * fields and use its maps. One event per getpriority(2) call of process
 * target_tgid (IG's parameter name), with the call's `who` argument.
 *
 * The program counts calls per `who` in the hash map `counts`, which the
 * module reads, and copies tags[0], which the module writes at
 * gadgetStart, into every event's `tag`. It also writes each `who` into
 * the perf event array `whos`, which no tracer names: a module may read
 * it with a perf reader (sources' TestPerfReader does).
 *
 * Built twice: ig_wasm.bpf.o, and ig_wasm_filter.bpf.o with the common
 * filters (sluice/filter.h, IG's names), whose mount namespace filter an
 * IG module's shouldDiscardMntnsID must agree with.
 */
#include <sluice/gadget.h>
#ifdef IG_WASM_FILTER
#include <sluice/filter.h>
#endif

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	gadget_syscall syscall_raw;
	__u64 who;
	__u64 tag;
};

const volatile pid_t target_tgid = 0;
GADGET_PARAM(target_tgid);

GADGET_TRACER_MAP(events, 256 * 1024);
GADGET_TRACER(calls, events, event);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} tags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} whos SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpriority")
int ig_wasm_e(struct trace_event_raw_sys_enter *ctx)
{
	__u32 zero = 0;
	__u64 one = 1, who, *count, *tag;
	struct event *e;

	if (target_tgid && (bpf_get_current_pid_tgid() >> 32) != (__u32)target_tgid)
		return 0;
#ifdef IG_WASM_FILTER
	if (gadget_should_discard_data_current())
		return 0;
#endif
	who = ctx->args[1];
	bpf_perf_event_output(ctx, &whos, BPF_F_CURRENT_CPU, &who, sizeof(who));
	count = bpf_map_lookup_elem(&counts, &who);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&counts, &who, &one, BPF_NOEXIST);
	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate(&e->proc);
	e->syscall_raw = ctx->id;
	e->who = who;
	tag = bpf_map_lookup_elem(&tags, &zero);
	e->tag = tag ? *tag : 0;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
