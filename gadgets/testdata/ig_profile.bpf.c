// SPDX-License-Identifier: Apache-2.0
/*
 * An Inspektor Gadget-style CPU profiler, after IG's profile_cpu: a
 * perf_event program sampling every CPU counts samples per process, kernel
 * stack and user stack in a stack-keyed hash map drained every interval
 * (GADGET_MAPITER). Only process target_tgid when set.
 */
#include <sluice/gadget.h>
#include <sluice/kernel_stack_map.h>
#include <sluice/user_stack_map.h>

const volatile pid_t target_tgid = 0;
GADGET_PARAM(target_tgid);

struct key_t {
	gadget_pid pid;
	gadget_comm comm[TASK_COMM_LEN];
	gadget_kernel_stack kern_stack_raw;
	struct gadget_user_stack user_stack_raw;
};

struct value_t {
	gadget_counter__u64 samples;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct key_t);
	__type(value, struct value_t);
} counts SEC(".maps");

GADGET_MAPITER(samples, counts);

static const struct value_t zero;

SEC("perf_event")
int ig_prof_sample(struct bpf_perf_event_data *ctx)
{
	struct key_t key = {};
	struct value_t *v;

	key.pid = bpf_get_current_pid_tgid() >> 32;
	if (!key.pid || (target_tgid && key.pid != (__u32)target_tgid))
		return 0;
	bpf_get_current_comm(key.comm, sizeof(key.comm));
	key.kern_stack_raw = gadget_get_kernel_stack(ctx);
	gadget_get_user_stack(ctx, &key.user_stack_raw);
	/* Per-sample fields would split every stack into its own entry. */
	key.user_stack_raw.boot_timestamp = 0;
	v = bpf_map_lookup_elem(&counts, &key);
	if (!v) {
		bpf_map_update_elem(&counts, &key, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&counts, &key);
		if (!v)
			return 0;
	}
	__sync_fetch_and_add(&v->samples, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
