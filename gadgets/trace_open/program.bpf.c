// SPDX-License-Identifier: Apache-2.0
/*
 * trace_open: one event per open, openat and openat2 call.
 *
 * Fields (struct event):
 *   timestamp  gadget_timestamp   boot time of the syscall's return
 *   mntns_id   gadget_mntns_id    mount namespace of the caller
 *   pid        gadget_pid         tgid of the caller
 *   uid        gadget_uid         caller's uid
 *   comm       char[16]           caller's comm
 *   path       char[256]          the path as passed (relative paths stay
 *                                 relative to the dirfd or cwd)
 *   flags      gadget_file_flags  O_* flags
 *   mode       gadget_file_mode   creation mode (meaningful with O_CREAT)
 *   ret        gadget_ret         the new fd, or a negative errno
 *
 * Params: target_pid (u32, 0 = every process), ignore_failed (bool).
 *
 * The path is read on entry, not on exit: that is when the kernel copies it,
 * so a thread rewriting the buffer during the call has a narrower window to
 * make the event lie. open(2) does not exist on arm64, hence optional.
 */
#include <sluice/gadget.h>
#include <sluice/filter.h>

#define PATH_LEN 256

struct event {
	gadget_timestamp timestamp;
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_uid uid;
	gadget_comm comm[TASK_COMM_LEN];
	char path[PATH_LEN];
	gadget_file_flags flags;
	gadget_file_mode mode;
	gadget_ret ret;
};

const volatile __u32 target_pid = 0;
const volatile bool ignore_failed = false;
GADGET_PARAM(target_pid);
GADGET_PARAM(ignore_failed);

GADGET_TRACER_MAP(events, 1024 * 1024 * 2);
GADGET_TRACER(trace_open, events, event);

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32); /* tid */
	__type(value, struct event);
} pending SEC(".maps");

static const struct event empty_event = {};

static __always_inline int enter_open(const char *path, __u32 flags, __u32 mode)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, tgid = id >> 32;
	struct event *e;

	if (target_pid && target_pid != tgid)
		return 0;
	if (gadget_should_discard_data_current())
		return 0;
	if (bpf_map_update_elem(&pending, &tid, &empty_event, BPF_ANY))
		return 0;
	e = bpf_map_lookup_elem(&pending, &tid);
	if (!e)
		return 0;
	e->pid = tgid;
	e->flags = flags;
	e->mode = mode;
	bpf_probe_read_user_str(e->path, sizeof(e->path), path);
	return 0;
}

static __always_inline int exit_open(void *ctx, long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct event *e;

	e = bpf_map_lookup_elem(&pending, &tid);
	if (!e)
		return 0;
	if (ret < 0 && ignore_failed)
		goto out;
	e->timestamp = bpf_ktime_get_boot_ns();
	e->mntns_id = gadget_get_current_mntns_id();
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->ret = ret;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	gadget_output_buf(ctx, &events, e, sizeof(*e));
out:
	bpf_map_delete_elem(&pending, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_open")
int trace_enter_open(struct trace_event_raw_sys_enter *ctx)
{
	return enter_open((const char *)ctx->args[0], ctx->args[1], ctx->args[2]);
}
GADGET_OPTIONAL(trace_enter_open);

SEC("tracepoint/syscalls/sys_exit_open")
int trace_exit_open(struct trace_event_raw_sys_exit *ctx)
{
	return exit_open(ctx, ctx->ret);
}
GADGET_OPTIONAL(trace_exit_open);

SEC("tracepoint/syscalls/sys_enter_openat")
int trace_enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	return enter_open((const char *)ctx->args[1], ctx->args[2], ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int trace_exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	return exit_open(ctx, ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int trace_enter_openat2(struct trace_event_raw_sys_enter *ctx)
{
	struct open_how how = {};

	/* A bad how pointer fails the syscall with EFAULT; report it with
	 * zero flags rather than not at all. */
	bpf_probe_read_user(&how, sizeof(how), (void *)ctx->args[2]);
	return enter_open((const char *)ctx->args[1], how.flags, how.mode);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int trace_exit_openat2(struct trace_event_raw_sys_exit *ctx)
{
	return exit_open(ctx, ctx->ret);
}

char LICENSE[] SEC("license") = "GPL";
