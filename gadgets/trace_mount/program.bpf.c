// SPDX-License-Identifier: Apache-2.0
/*
 * trace_mount: mounts, unmounts and mount moves: a container escape or a
 * persistence trick often starts with one.
 *
 * Fields (struct event):
 *   timestamp  gadget_timestamp        boot time of the call's return
 *   mntns_id   gadget_mntns_id         mount namespace of the caller
 *   pid, tid   gadget_pid, gadget_tid  caller
 *   uid, gid   gadget_uid, gadget_gid  caller's credentials
 *   comm       char[16]                caller's comm
 *   op         enum mount_op           MOUNT, UMOUNT or MOVE_MOUNT
 *   src        char[256]               mount: the device or source
 *                                      (as passed); move_mount: the
 *                                      source path ("" with
 *                                      MOVE_MOUNT_F_EMPTY_PATH)
 *   dest       char[256]               mount point (as passed)
 *   fs         char[32]                mount: the file system type
 *   flags      __u64                   mount: MS_* flags; umount2:
 *                                      MNT_* flags; move_mount:
 *                                      MOVE_MOUNT_* flags
 *   ret        gadget_ret              0 or a negative errno
 *
 * Params: ignore_failed (bool, default false) drops calls that failed.
 *
 * The names are Inspektor Gadget's trace_mount's.
 *
 * Tracepoints: syscalls/sys_{enter,exit}_{mount,umount,move_mount}. The
 * mount data string is not reported: it may hold credentials (cifs).
 * Mounts made with fsopen/fsconfig/fsmount are reported when move_mount
 * attaches them.
 */
#include <sluice/gadget.h>
#include <sluice/filter.h>

#define PATH_LEN 256
#define FSTYPE_LEN 32

enum mount_op {
	MOUNT = 0,
	UMOUNT = 1,
	MOVE_MOUNT = 2,
};

struct event {
	gadget_timestamp timestamp;
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_tid tid;
	gadget_uid uid;
	gadget_gid gid;
	gadget_comm comm[TASK_COMM_LEN];
	enum mount_op op;
	char src[PATH_LEN];
	char dest[PATH_LEN];
	char fs[FSTYPE_LEN];
	__u64 flags;
	gadget_ret ret;
};

const volatile bool ignore_failed = false;
GADGET_PARAM(ignore_failed);

GADGET_TRACER_MAP(events, 1024 * 256);
GADGET_TRACER(trace_mount, events, event);

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* tid */
	__type(value, struct event);
} pending SEC(".maps");

static const struct event empty_event = {};

static __always_inline struct event *enter(enum mount_op op)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct event *e;

	if (gadget_should_discard_data_current())
		return NULL;
	if (bpf_map_update_elem(&pending, &tid, &empty_event, BPF_ANY))
		return NULL;
	e = bpf_map_lookup_elem(&pending, &tid);
	if (e)
		e->op = op;
	return e;
}

SEC("tracepoint/syscalls/sys_enter_mount")
int trace_enter_mount(struct trace_event_raw_sys_enter *ctx)
{
	struct event *e = enter(MOUNT);

	if (!e)
		return 0;
	bpf_probe_read_user_str(e->src, sizeof(e->src), (const char *)ctx->args[0]);
	bpf_probe_read_user_str(e->dest, sizeof(e->dest), (const char *)ctx->args[1]);
	bpf_probe_read_user_str(e->fs, sizeof(e->fs), (const char *)ctx->args[2]);
	e->flags = ctx->args[3];
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_umount")
int trace_enter_umount(struct trace_event_raw_sys_enter *ctx)
{
	struct event *e = enter(UMOUNT);

	if (!e)
		return 0;
	bpf_probe_read_user_str(e->dest, sizeof(e->dest), (const char *)ctx->args[0]);
	e->flags = ctx->args[1];
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_move_mount")
int trace_enter_move_mount(struct trace_event_raw_sys_enter *ctx)
{
	struct event *e = enter(MOVE_MOUNT);

	if (!e)
		return 0;
	bpf_probe_read_user_str(e->src, sizeof(e->src), (const char *)ctx->args[1]);
	bpf_probe_read_user_str(e->dest, sizeof(e->dest), (const char *)ctx->args[3]);
	e->flags = ctx->args[4];
	return 0;
}

static __always_inline int exit_mount(void *ctx, long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ugid = bpf_get_current_uid_gid();
	__u32 tid = (__u32)id;
	struct event *e;

	e = bpf_map_lookup_elem(&pending, &tid);
	if (!e)
		return 0;
	if (ret < 0 && ignore_failed)
		goto out;
	e->timestamp = bpf_ktime_get_boot_ns();
	e->mntns_id = gadget_get_current_mntns_id();
	e->pid = id >> 32;
	e->tid = tid;
	e->uid = (__u32)ugid;
	e->gid = ugid >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->ret = ret;
	gadget_output_buf(ctx, &events, e, sizeof(*e));
out:
	bpf_map_delete_elem(&pending, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_mount")
int trace_exit_mount(struct trace_event_raw_sys_exit *ctx)
{
	return exit_mount(ctx, ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_umount")
int trace_exit_umount(struct trace_event_raw_sys_exit *ctx)
{
	return exit_mount(ctx, ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_move_mount")
int trace_exit_move_mount(struct trace_event_raw_sys_exit *ctx)
{
	return exit_mount(ctx, ctx->ret);
}

char LICENSE[] SEC("license") = "GPL";
