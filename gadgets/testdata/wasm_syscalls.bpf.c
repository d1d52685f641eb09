// SPDX-License-Identifier: Apache-2.0
/*
 * The test gadget of gadget modules (its module is
 * wasmstages/testdata/gadget_syscalls.c): one record per syscall entry of
 * process target_pid, for syscall number target_syscall (all when -1).
 *
 * The string parameter `syscall` is read by nobody here: the module's
 * gadget_init turns that name into target_syscall, before load. The
 * program counts the syscalls it reports in the hash map `counts` (by
 * number), copies config[0] (which the module writes at gadget_start) into
 * every record's `tag`, and puts the first kernel stack frame in `kaddr`
 * for the module to symbolise.
 */
#include <sluice/gadget.h>

struct event {
	gadget_timestamp timestamp;
	gadget_pid pid;
	__u32 nr;
	__u64 arg0;
	__u64 arg1;
	__u64 tag;
	__u64 kaddr;
};

const volatile __u32 target_pid = 0;
GADGET_PARAM(target_pid);
const volatile __s32 target_syscall = -1;
GADGET_PARAM(target_syscall);
const volatile char syscall[32] = "";
GADGET_PARAM(syscall);

GADGET_TRACER_MAP(events, 256 * 1024);
GADGET_TRACER(syscalls, events, event);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} config SEC(".maps");

SEC("tracepoint/raw_syscalls/sys_enter")
int on_sys_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u32 zero = 0, nr;
	__u64 one = 1, *count, *tag, ips[4];
	struct event *e;
	long id = ctx->id, n;

	if (target_pid != 0 && (bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 0;
	if (target_syscall >= 0 && id != target_syscall)
		return 0;
	nr = (__u32)id;
	count = bpf_map_lookup_elem(&counts, &nr);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&counts, &nr, &one, BPF_NOEXIST);

	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		return 0;
	e->timestamp = bpf_ktime_get_boot_ns();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->nr = nr;
	e->arg0 = ctx->args[0];
	e->arg1 = ctx->args[1];
	tag = bpf_map_lookup_elem(&config, &zero);
	e->tag = tag ? *tag : 0;
	n = bpf_get_stack(ctx, ips, sizeof(ips), 0);
	e->kaddr = n > 0 ? ips[0] : 0;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
