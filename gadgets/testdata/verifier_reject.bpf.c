// SPDX-License-Identifier: Apache-2.0
/*
 * A program the verifier must reject: it writes past the end of a map value
 * (an 8-byte array element, written at offset 64). Tests use it to check
 * that verifier errors reach the user with the verifier's log.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

/* An output, so the object parses as a gadget and fails only at load. */
struct event {
	__u32 pid;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

const struct event *unused_event __attribute__((unused));

SEC("tracepoint/syscalls/sys_enter_getppid")
int out_of_bounds(void *ctx)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&values, &key);

	if (v)
		v[8] = 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
