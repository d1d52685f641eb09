// SPDX-License-Identifier: Apache-2.0
/*
 * A gadget with a map pinned by name (LIBBPF_PIN_BY_NAME), as some of
 * Inspektor Gadget's are: sluice pins it in a directory of its own per
 * gadget instance and removes it when the gadget closes. Its tracer emits
 * the running count of getppid(2) calls from the pinned map.
 */
#include <sluice/gadget.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned_calls SEC(".maps");

struct event {
	gadget_pid pid;
	__u64 calls;
};

GADGET_TRACER_MAP(events, 4096);
GADGET_TRACER(calls, events, event);

SEC("tracepoint/syscalls/sys_enter_getppid")
int ig_pinned_count(void *ctx)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&pinned_calls, &zero);
	struct event e = {};

	if (!n)
		return 0;
	e.calls = __sync_fetch_and_add(n, 1) + 1;
	e.pid = bpf_get_current_pid_tgid() >> 32;
	gadget_output_buf(ctx, &events, &e, sizeof(e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
