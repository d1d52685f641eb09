// SPDX-License-Identifier: Apache-2.0
/*
 * An Inspektor Gadget-style map element iterator: iterator "calls" walks
 * map `calls` (iter/bpf_map_elem, bound with GADGET_ITER_TARGET_MAP), which
 * a tracepoint fills with getppid(2) calls per process (of target_tgid
 * only, when set). Some kernels refuse map element iterators with EPERM.
 */
#include <sluice/gadget.h>

const volatile pid_t target_tgid = 0;
GADGET_PARAM(target_tgid);

/* calls */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);   /* tgid */
	__type(value, __u64); /* getppid calls */
} calls SEC(".maps");

struct call_entry {
	gadget_pid pid;
	__u64 count;
};

GADGET_ITER(calls, call_entry, ig_snap_calls);
GADGET_ITER_TARGET_MAP(ig_snap_calls, calls);

SEC("iter/bpf_map_elem")
int ig_snap_calls(struct bpf_iter__bpf_map_elem *ctx)
{
	__u32 *key = ctx->key;
	__u64 *value = ctx->value;
	struct call_entry e = {};

	if (!key || !value)
		return 0;
	e.pid = *key;
	e.count = *value;
	bpf_seq_write(ctx->meta->seq, &e, sizeof(e));
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int ig_snap_count(void *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 one = 1, *n;

	if (target_tgid && tgid != (__u32)target_tgid)
		return 0;
	n = bpf_map_lookup_elem(&calls, &tgid);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&calls, &tgid, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
