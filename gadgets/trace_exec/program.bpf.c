// SPDX-License-Identifier: Apache-2.0
/*
 * trace_exec: one event per execve/execveat, successful or not.
 *
 * Fields (struct event):
 *   timestamp  gadget_timestamp  boot time of the syscall's return
 *   mntns_id   gadget_mntns_id   mount namespace of the caller
 *   pid        gadget_pid        tgid of the caller
 *   ppid       gadget_ppid       tgid of its parent
 *   uid, gid   gadget_uid/gid    credentials after the exec (setuid applies)
 *   comm       char[16]          the new program's comm on success, the
 *                                caller's on failure
 *   filename   char[256]         the path as passed to execve
 *   ret        gadget_ret        0, or a negative errno
 *   args       gadget_strlist[]  argv, NUL-separated; the record ends where
 *                                the args end (at most 32 args, each clipped
 *                                to 256 bytes, at least 1.5 KiB in all)
 *
 * Params: ignore_failed (bool, default false) drops failed execs.
 *
 * The syscall's entry stores the pending event keyed by thread id; its exit
 * completes and emits it. When a non-leader thread execs, the kernel gives it
 * the leader's id before the syscall returns, so the entry also records
 * tgid -> tid for that case: otherwise such execs would go unreported, which
 * an attacker could use to hide one.
 */
#include <sluice/gadget.h>
#include <sluice/filter.h>

#define FILENAME_LEN 256
#define ARG_LEN 256
#define MAX_ARGS 32
#define ARGS_MIN 1536
#define ARGS_SIZE (ARGS_MIN + ARG_LEN)

struct event {
	gadget_timestamp timestamp;
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_ppid ppid;
	gadget_uid uid;
	gadget_gid gid;
	gadget_comm comm[TASK_COMM_LEN];
	char filename[FILENAME_LEN];
	gadget_ret ret;
	gadget_strlist args[ARGS_SIZE];
	/* Not emitted: the record is cut at the end of the args. */
	__u32 __args_len;
};

const volatile bool ignore_failed = false;
GADGET_PARAM(ignore_failed);

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(trace_exec, events, event);

/* LRU: an exec whose exit never runs (task killed mid-exec) must not leak
 * an entry forever. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct event);
} pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);   /* tgid */
	__type(value, __u32); /* tid of the non-leader thread that execs */
} nonleader SEC(".maps");

static const struct event empty_event = {};

static __always_inline int enter_exec(const char *filename,
				      const char *const *argv)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, tgid = id >> 32;
	struct event *e;
	__u32 off = 0;

	if (bpf_map_update_elem(&pending, &tid, &empty_event, BPF_ANY))
		return 0;
	e = bpf_map_lookup_elem(&pending, &tid);
	if (!e)
		return 0;
	if (tid != tgid)
		bpf_map_update_elem(&nonleader, &tgid, &tid, BPF_ANY);

	e->pid = tgid;
	e->ppid = gadget_get_current_ppid();
	e->mntns_id = gadget_get_current_mntns_id();
	bpf_probe_read_user_str(e->filename, sizeof(e->filename), filename);

	for (int i = 0; i < MAX_ARGS; i++) {
		const char *arg = NULL;
		long n;

		if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) || !arg)
			break;
		/* Bounding off keeps every read inside args[] for the
		 * verifier: each read may use a full ARG_LEN. */
		if (off > ARGS_MIN)
			break;
		n = bpf_probe_read_user_str(&e->args[off], ARG_LEN, arg);
		if (n <= 0)
			break;
		off += n;
	}
	e->__args_len = off;
	return 0;
}

static __always_inline int exit_exec(void *ctx, long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ugid = bpf_get_current_uid_gid();
	__u32 tid = (__u32)id, tgid = id >> 32;
	__u32 key = tid, *other;
	struct event *e;
	__u32 len;

	e = bpf_map_lookup_elem(&pending, &key);
	if (tid != tgid) {
		/* A non-leader's exec ended without taking over the leader. */
		other = bpf_map_lookup_elem(&nonleader, &tgid);
		if (other && *other == tid)
			bpf_map_delete_elem(&nonleader, &tgid);
	} else if (!e && ret == 0) {
		/* A successful exec from a non-leader thread returns as the
		 * leader: its pending event is under the old tid. */
		other = bpf_map_lookup_elem(&nonleader, &tgid);
		if (other) {
			key = *other;
			bpf_map_delete_elem(&nonleader, &tgid);
			e = bpf_map_lookup_elem(&pending, &key);
		}
	}
	if (!e)
		return 0;
	if (ret < 0 && ignore_failed)
		goto out;
	/* Filtered after the exec, so that --comm and --uid select the new
	 * program and its credentials, as the event reports them. */
	if (gadget_should_discard_data_current())
		goto out;

	e->timestamp = bpf_ktime_get_boot_ns();
	e->ret = ret;
	e->uid = (__u32)ugid;
	e->gid = ugid >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));

	len = e->__args_len;
	if (len > ARGS_SIZE)
		len = ARGS_SIZE;
	gadget_output_buf(ctx, &events, e, offsetof(struct event, args) + len);
out:
	bpf_map_delete_elem(&pending, &key);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_execve")
int trace_enter_execve(struct trace_event_raw_sys_enter *ctx)
{
	return enter_exec((const char *)ctx->args[0],
			  (const char *const *)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_exit_execve")
int trace_exit_execve(struct trace_event_raw_sys_exit *ctx)
{
	return exit_exec(ctx, ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int trace_enter_execveat(struct trace_event_raw_sys_enter *ctx)
{
	return enter_exec((const char *)ctx->args[1],
			  (const char *const *)ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_exit_execveat")
int trace_exit_execveat(struct trace_event_raw_sys_exit *ctx)
{
	return exit_exec(ctx, ctx->ret);
}

char LICENSE[] SEC("license") = "GPL";
