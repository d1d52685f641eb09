// SPDX-License-Identifier: Apache-2.0
/*
 * trace_bpf: who loads and attaches eBPF programs, through the bpf(2)
 * syscall's tracepoints.
 *
 * Fields (struct event):
 *   timestamp    gadget_timestamp        boot time of the call's return
 *   mntns_id     gadget_mntns_id         caller's mount namespace
 *   pid, tid     gadget_pid, gadget_tid  caller
 *   uid, gid     gadget_uid, gadget_gid  caller's credentials
 *   comm         char[16]                caller's comm
 *   cmd          enum bpf_cmd            BPF_PROG_LOAD, BPF_PROG_ATTACH,
 *                                        BPF_RAW_TRACEPOINT_OPEN,
 *                                        BPF_LINK_CREATE (every command
 *                                        with all_commands)
 *   prog_type    enum bpf_prog_type      BPF_PROG_TYPE_KPROBE, ...
 *   prog_name    char[16]                the program's name
 *   prog_id      __u32                   the kernel's id of the program
 *                                        (bpftool prog show id N); 0 when
 *                                        the call failed
 *   insn_cnt     __u32                   BPF_PROG_LOAD: instructions
 *   attach_type  enum bpf_attach_type    PROG_LOAD (expected), PROG_ATTACH,
 *                                        LINK_CREATE: the attach type
 *   target       char[64]                RAW_TRACEPOINT_OPEN: the
 *                                        tracepoint's name
 *   ret          gadget_ret              a new fd, 0, or a negative errno
 *
 * Params: all_commands (bool, default false) reports every bpf(2) command
 * (map reads and writes are frequent: expect volume); ignore_failed (bool,
 * default false) drops calls that failed.
 *
 * The program's type, name and id come from the kernel's own object once
 * the call succeeded (the fd it returned, or the program fd it attached),
 * not from the caller's memory, which could change under the call; for a
 * failed load they come from the caller's attributes.
 */
#include <sluice/gadget.h>
#include <sluice/filter.h>

#define TARGET_LEN 64

struct event {
	gadget_timestamp timestamp;
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_tid tid;
	gadget_uid uid;
	gadget_gid gid;
	gadget_comm comm[TASK_COMM_LEN];
	enum bpf_cmd cmd;
	enum bpf_prog_type prog_type;
	char prog_name[BPF_OBJ_NAME_LEN];
	__u32 prog_id;
	__u32 insn_cnt;
	enum bpf_attach_type attach_type;
	char target[TARGET_LEN];
	gadget_ret ret;
	/* Not emitted: the program fd an attach command names. */
	__s32 __prog_fd;
};

const volatile bool all_commands = false;
GADGET_PARAM(all_commands);
const volatile bool ignore_failed = false;
GADGET_PARAM(ignore_failed);

GADGET_TRACER_MAP(events, 1024 * 256);
GADGET_TRACER(trace_bpf, events, event);

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32); /* tid */
	__type(value, struct event);
} pending SEC(".maps");

static const struct event empty_event = {};

SEC("tracepoint/syscalls/sys_enter_bpf")
int trace_enter_bpf(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	int cmd = (int)ctx->args[0];
	const union bpf_attr *attr = (const union bpf_attr *)ctx->args[1];
	struct event *e;

	if (!all_commands && cmd != BPF_PROG_LOAD && cmd != BPF_PROG_ATTACH &&
	    cmd != BPF_RAW_TRACEPOINT_OPEN && cmd != BPF_LINK_CREATE)
		return 0;
	if (gadget_should_discard_data_current())
		return 0;
	if (bpf_map_update_elem(&pending, &tid, &empty_event, BPF_ANY))
		return 0;
	e = bpf_map_lookup_elem(&pending, &tid);
	if (!e)
		return 0;
	e->cmd = cmd;
	e->__prog_fd = -1;
	switch (cmd) {
	case BPF_PROG_LOAD:
		bpf_probe_read_user(&e->prog_type, sizeof(__u32), &attr->prog_type);
		bpf_probe_read_user(&e->insn_cnt, sizeof(__u32), &attr->insn_cnt);
		bpf_probe_read_user(&e->attach_type, sizeof(__u32), &attr->expected_attach_type);
		bpf_probe_read_user_str(e->prog_name, sizeof(e->prog_name), attr->prog_name);
		break;
	case BPF_PROG_ATTACH:
		bpf_probe_read_user(&e->__prog_fd, sizeof(__u32), &attr->attach_bpf_fd);
		bpf_probe_read_user(&e->attach_type, sizeof(__u32), &attr->attach_type);
		break;
	case BPF_LINK_CREATE:
		bpf_probe_read_user(&e->__prog_fd, sizeof(__u32), &attr->link_create.prog_fd);
		bpf_probe_read_user(&e->attach_type, sizeof(__u32), &attr->link_create.attach_type);
		break;
	case BPF_RAW_TRACEPOINT_OPEN: {
		__u64 name = 0;

		bpf_probe_read_user(&e->__prog_fd, sizeof(__u32), &attr->raw_tracepoint.prog_fd);
		bpf_probe_read_user(&name, sizeof(name), &attr->raw_tracepoint.name);
		if (name)
			bpf_probe_read_user_str(e->target, sizeof(e->target), (const char *)name);
		break;
	}
	}
	return 0;
}

/* read_prog fills the program's fields from the kernel's bpf_prog behind
 * fd, a descriptor the call just returned or used successfully. */
static __always_inline void read_prog(struct event *e, long fd)
{
	struct file *f = gadget_get_current_file(fd);
	struct bpf_prog *prog;

	if (!f)
		return;
	prog = BPF_CORE_READ(f, private_data);
	if (!prog)
		return;
	e->prog_type = BPF_CORE_READ(prog, type);
	e->prog_id = BPF_CORE_READ(prog, aux, id);
	BPF_CORE_READ_STR_INTO(&e->prog_name, prog, aux, name);
}

SEC("tracepoint/syscalls/sys_exit_bpf")
int trace_exit_bpf(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ugid = bpf_get_current_uid_gid();
	__u32 tid = (__u32)id;
	long ret = ctx->ret;
	struct event *e;

	e = bpf_map_lookup_elem(&pending, &tid);
	if (!e)
		return 0;
	if (ret < 0 && ignore_failed)
		goto out;
	if (ret >= 0) {
		if (e->cmd == BPF_PROG_LOAD)
			read_prog(e, ret);
		else if (e->__prog_fd >= 0)
			read_prog(e, e->__prog_fd);
	}
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

char LICENSE[] SEC("license") = "GPL";
