// SPDX-License-Identifier: Apache-2.0
/*
 * trace_setuid: credential changes: every set*uid and set*gid call, with
 * the credentials before and after, successful or not.
 *
 * Fields (struct event):
 *   timestamp           gadget_timestamp        boot time of the return
 *   mntns_id            gadget_mntns_id         caller's mount namespace
 *   pid, tid            gadget_pid, gadget_tid  caller
 *   comm                char[16]                caller's comm
 *   op                  enum setid_op           SETUID, SETGID, SETREUID,
 *                                               SETREGID, SETRESUID,
 *                                               SETRESGID, SETFSUID,
 *                                               SETFSGID
 *   args                __s32[3]                the ids as passed (-1
 *                                               leaves one unchanged;
 *                                               unused ones are -1)
 *   uid, euid           gadget_uid              real and effective uid
 *   gid, egid           gadget_gid              before the call
 *   new_uid, new_euid   gadget_uid              after the call
 *   new_gid, new_egid   gadget_gid
 *   ret                 gadget_ret              0 or a negative errno
 *                                               (setfs*id: the previous
 *                                               fs id)
 *
 * Params: changes_only (bool, default false) keeps only calls that changed
 * the real or effective ids.
 *
 * Tracepoints: syscalls/sys_{enter,exit}_set{,re,res,fs}{uid,gid}.
 */
#include <sluice/gadget.h>
#include <sluice/filter.h>

enum setid_op {
	SETUID = 0,
	SETGID = 1,
	SETREUID = 2,
	SETREGID = 3,
	SETRESUID = 4,
	SETRESGID = 5,
	SETFSUID = 6,
	SETFSGID = 7,
};

struct ids {
	gadget_uid uid;
	gadget_uid euid;
	gadget_gid gid;
	gadget_gid egid;
};

struct event {
	gadget_timestamp timestamp;
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_tid tid;
	gadget_comm comm[TASK_COMM_LEN];
	enum setid_op op;
	__s32 args[3];
	gadget_uid uid;
	gadget_uid euid;
	gadget_gid gid;
	gadget_gid egid;
	gadget_uid new_uid;
	gadget_uid new_euid;
	gadget_gid new_gid;
	gadget_gid new_egid;
	gadget_ret ret;
};

const volatile bool changes_only = false;
GADGET_PARAM(changes_only);

GADGET_TRACER_MAP(events, 1024 * 256);
GADGET_TRACER(trace_setuid, events, event);

struct pending_call {
	enum setid_op op;
	__s32 args[3];
	struct ids before;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32); /* tid */
	__type(value, struct pending_call);
} pending SEC(".maps");

static __always_inline void current_ids(struct ids *ids)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	const struct cred *cred = BPF_CORE_READ(task, cred);

	ids->uid = BPF_CORE_READ(cred, uid.val);
	ids->euid = BPF_CORE_READ(cred, euid.val);
	ids->gid = BPF_CORE_READ(cred, gid.val);
	ids->egid = BPF_CORE_READ(cred, egid.val);
}

static __always_inline int enter(struct trace_event_raw_sys_enter *ctx, enum setid_op op, int nargs)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct pending_call p = { .op = op, .args = { -1, -1, -1 } };

	if (gadget_should_discard_data_current())
		return 0;
	/* Constant indices: the verifier refuses loads through a ctx pointer
	 * moved by a loop variable. */
	p.args[0] = (__s32)ctx->args[0];
	if (nargs > 1)
		p.args[1] = (__s32)ctx->args[1];
	if (nargs > 2)
		p.args[2] = (__s32)ctx->args[2];
	current_ids(&p.before);
	bpf_map_update_elem(&pending, &tid, &p, BPF_ANY);
	return 0;
}

static __always_inline int exit_call(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct pending_call *p;
	struct ids after;
	struct event *e;

	p = bpf_map_lookup_elem(&pending, &tid);
	if (!p)
		return 0;
	current_ids(&after);
	if (changes_only && after.uid == p->before.uid && after.euid == p->before.euid &&
	    after.gid == p->before.gid && after.egid == p->before.egid)
		goto out;
	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		goto out;
	e->timestamp = bpf_ktime_get_boot_ns();
	e->mntns_id = gadget_get_current_mntns_id();
	e->pid = id >> 32;
	e->tid = tid;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->op = p->op;
	e->args[0] = p->args[0];
	e->args[1] = p->args[1];
	e->args[2] = p->args[2];
	e->uid = p->before.uid;
	e->euid = p->before.euid;
	e->gid = p->before.gid;
	e->egid = p->before.egid;
	e->new_uid = after.uid;
	e->new_euid = after.euid;
	e->new_gid = after.gid;
	e->new_egid = after.egid;
	e->ret = ctx->ret;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
out:
	bpf_map_delete_elem(&pending, &tid);
	return 0;
}

#define SETID_CALL(name, op, nargs)                                   \
	SEC("tracepoint/syscalls/sys_enter_" #name)                  \
	int trace_enter_##name(struct trace_event_raw_sys_enter *ctx) \
	{                                                             \
		return enter(ctx, op, nargs);                         \
	}                                                             \
	SEC("tracepoint/syscalls/sys_exit_" #name)                   \
	int trace_exit_##name(struct trace_event_raw_sys_exit *ctx)   \
	{                                                             \
		return exit_call(ctx);                                \
	}

SETID_CALL(setuid, SETUID, 1)
SETID_CALL(setgid, SETGID, 1)
SETID_CALL(setreuid, SETREUID, 2)
SETID_CALL(setregid, SETREGID, 2)
SETID_CALL(setresuid, SETRESUID, 3)
SETID_CALL(setresgid, SETRESGID, 3)
SETID_CALL(setfsuid, SETFSUID, 1)
SETID_CALL(setfsgid, SETFSGID, 1)

char LICENSE[] SEC("license") = "GPL";
