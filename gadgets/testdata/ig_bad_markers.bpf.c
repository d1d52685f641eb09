// SPDX-License-Identifier: Apache-2.0
/*
 * Gadgets sluice refuses, one per BAD_* define (built into
 * ig_bad_<case>.bpf.o by gadgets/build.sh): each error must name what is
 * wrong and what to do.
 *
 *   expr     a map gated by an IG expression (GADGET_MAP_ONLY_IF)
 *   percpu   a map iterator over a per-CPU hash map
 *   zeromap  a map declared with 0 entries and no <map>_max_entries param
 *   traceloop a hash of maps of perf buffers (IG's traceloop output)
 */
#include <sluice/gadget.h>

struct event {
	gadget_pid pid;
};

GADGET_TRACER_MAP(events, 4096);
GADGET_TRACER(calls, events, event);

#ifdef BAD_EXPR
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u32);
} gated SEC(".maps") __attribute__((btf_decl_tag("ig:only_if:params.collect")));
#endif

#ifdef BAD_PERCPU
struct stat_key {
	__u32 pid;
};
struct stat_value {
	__u64 calls;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16);
	__type(key, struct stat_key);
	__type(value, struct stat_value);
} stats SEC(".maps");
GADGET_MAPITER(stats, stats);
#endif

#ifdef BAD_ZEROMAP
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 0);
	__type(key, __u32);
	__type(value, __u32);
} unsized SEC(".maps");
#endif

#ifdef BAD_TRACELOOP
struct inner {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 16);
	__type(key, __u64);
	__array(values, struct inner);
} map_of_perf_buffers SEC(".maps");
#endif

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	struct event e = {.pid = bpf_get_current_pid_tgid() >> 32};

	gadget_output_buf(ctx, &events, &e, sizeof(e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
