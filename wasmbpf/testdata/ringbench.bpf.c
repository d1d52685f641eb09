// SPDX-License-Identifier: Apache-2.0
/*
 * The load of the wasm-bpf throughput benchmark: every getppid(2) of the
 * process target_tgid writes BURST records to the ring buffer `records`,
 * so the kernel produces faster than any reader consumes and the reader's
 * rate is what is measured. Wakeups follow sluice's gadget header (one
 * once 64 KiB wait). The same object runs as ringbench.wasm's and as a
 * plain gadget (target_tgid is also a GADGET_PARAM).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define BURST 64

struct record {
	__u64 seq;
	__u32 pid;
	__u32 cpu;
	char comm[16];
	__u64 value;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} records SEC(".maps");

const volatile __u32 target_tgid = 0;
const void *gadget_param_target_tgid __attribute__((unused));
const struct record *unused_record __attribute__((unused));

__u64 counter;

SEC("tracepoint/syscalls/sys_enter_getppid")
int burst(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	if (pid != target_tgid)
		return 0;
	for (int i = 0; i < BURST; i++) {
		__u64 flags = bpf_ringbuf_query(&records, BPF_RB_AVAIL_DATA) >= (64 << 10) ?
				      BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
		struct record *r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);
		if (!r)
			return 0;
		r->seq = __sync_fetch_and_add(&counter, 1);
		r->pid = pid;
		r->cpu = bpf_get_smp_processor_id();
		bpf_get_current_comm(&r->comm, sizeof(r->comm));
		r->value = i;
		bpf_ringbuf_submit(r, flags);
	}
	return 0;
}
