// SPDX-License-Identifier: Apache-2.0
/*
 * An Inspektor Gadget-style topper with a tracer beside it (a gadget with
 * both, like IG's deadlock):
 *
 *   writes  GADGET_MAPITER over hash map `stats`: bytes and calls of
 *           write(2) per process and file descriptor, drained every
 *           interval (key struct file_key, value struct file_stat).
 *   syncs   GADGET_TRACER: one event per fsync(2).
 *
 * Both only for process target_tgid when it is set.
 */
#include <sluice/gadget.h>

const volatile pid_t target_tgid = 0;
GADGET_PARAM(target_tgid);

struct file_key {
	gadget_pid pid;
	__u32 fd;
};

struct file_stat {
	gadget_comm comm[TASK_COMM_LEN];
	gadget_counter__u64 writes;
	gadget_bytes bytes_raw;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct file_key);
	__type(value, struct file_stat);
} stats SEC(".maps");

GADGET_MAPITER(writes, stats);

struct sync_event {
	gadget_timestamp timestamp_raw;
	gadget_pid pid;
	__u32 fd;
};

GADGET_TRACER_MAP(events, 64 * 1024);
GADGET_TRACER(syncs, events, sync_event);

static const struct file_stat zero_stat;

static __always_inline bool wanted(__u32 tgid)
{
	return !target_tgid || tgid == (__u32)target_tgid;
}

SEC("tracepoint/syscalls/sys_enter_write")
int ig_top_write(struct trace_event_raw_sys_enter *ctx)
{
	struct file_key key = {};
	struct file_stat *st;

	key.pid = bpf_get_current_pid_tgid() >> 32;
	if (!wanted(key.pid))
		return 0;
	key.fd = ctx->args[0];
	st = bpf_map_lookup_elem(&stats, &key);
	if (!st) {
		bpf_map_update_elem(&stats, &key, &zero_stat, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&stats, &key);
		if (!st)
			return 0;
		bpf_get_current_comm(st->comm, sizeof(st->comm));
	}
	__sync_fetch_and_add(&st->writes, 1);
	__sync_fetch_and_add(&st->bytes_raw, ctx->args[2]);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_fsync")
int ig_top_fsync(struct trace_event_raw_sys_enter *ctx)
{
	struct sync_event *e;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (!wanted(tgid))
		return 0;
	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		return 0;
	e->timestamp_raw = bpf_ktime_get_boot_ns();
	e->pid = tgid;
	e->fd = ctx->args[0];
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
