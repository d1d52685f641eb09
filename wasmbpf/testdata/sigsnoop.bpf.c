// SPDX-License-Identifier: Apache-2.0
/*
 * The kernel half of sigsnoop.wasm: kill(2) calls through a perf event
 * array. target_pid (set by the application from argv) keeps only the
 * calls of one process.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct event {
	__u32 pid;
	__s32 tpid;
	__s32 sig;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

const volatile __u32 target_pid = 0;

const struct event *unused_event __attribute__((unused));

SEC("tracepoint/syscalls/sys_enter_kill")
int kill_entry(struct trace_event_raw_sys_enter *ctx)
{
	struct event e = {};

	e.pid = bpf_get_current_pid_tgid() >> 32;
	if (target_pid && e.pid != target_pid)
		return 0;
	e.tpid = (__s32)ctx->args[0];
	e.sig = (__s32)ctx->args[1];
	bpf_get_current_comm(&e.comm, sizeof(e.comm));
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &e, sizeof(e));
	return 0;
}
