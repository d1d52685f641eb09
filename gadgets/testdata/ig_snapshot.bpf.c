// SPDX-License-Identifier: Apache-2.0
/*
 * An Inspektor Gadget-style snapshot gadget: four iterators, each one
 * output, declared in the forms IG's headers emit.
 *
 *   processes  iter/task (GADGET_ITER + GADGET_ITER_MEMBER): one element
 *              per process (thread group leader): comm, pid, ppid, uid,
 *              mount namespace.
 *   files      iter/task_file (GADGET_SNAPSHOTTER with a program list): one
 *              element per open file of process target_tgid (0: every
 *              process): pid, fd, path (bpf_d_path), mode, inode.
 *   sockets    iter/tcp and iter/udp, both members of one iterator: local
 *              and remote L4 endpoints, TCP state, owner uid.
 *
 * The map element iterator is in ig_mapelem.bpf.c: some kernels refuse
 * iter/bpf_map_elem programs, and one refused program fails a whole load.
 */
#include <sluice/gadget.h>

const volatile pid_t target_tgid = 0;
GADGET_PARAM(target_tgid);

/* processes */

struct proc_entry {
	gadget_comm comm[TASK_COMM_LEN];
	gadget_pid pid;
	gadget_ppid ppid;
	gadget_uid uid;
	gadget_mntns_id mntns_id;
};

GADGET_ITER(processes, proc_entry);

SEC("iter/task")
GADGET_ITER_MEMBER(processes)
int ig_snap_task(struct bpf_iter__task *ctx)
{
	struct task_struct___ig *task = (struct task_struct___ig *)ctx->task;
	struct proc_entry e = {};

	if (!task || task->pid != task->tgid)
		return 0;
	e.pid = task->tgid;
	e.ppid = BPF_CORE_READ(task, real_parent, tgid);
	e.uid = BPF_CORE_READ(task, cred, uid.val);
	e.mntns_id = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	BPF_CORE_READ_STR_INTO(&e.comm, task, comm);
	bpf_seq_write(ctx->meta->seq, &e, sizeof(e));
	return 0;
}

/* files */

struct file_entry {
	gadget_pid pid;
	__u32 fd;
	gadget_file_mode mode;
	__u64 inode;
	char path[256];
};

GADGET_SNAPSHOTTER(files, file_entry, ig_snap_files);

SEC("iter/task_file")
int ig_snap_files(struct bpf_iter__task_file *ctx)
{
	struct task_struct___ig *task = (struct task_struct___ig *)ctx->task;
	struct file___ig *file = (struct file___ig *)ctx->file;
	struct file_entry e = {};

	if (!task || !file)
		return 0;
	if (target_tgid && task->tgid != target_tgid)
		return 0;
	e.pid = task->tgid;
	e.fd = ctx->fd;
	e.mode = BPF_CORE_READ(file, f_inode, i_mode);
	e.inode = BPF_CORE_READ(file, f_inode, i_ino);
	bpf_d_path((struct path *)&file->f_path, e.path, sizeof(e.path));
	bpf_seq_write(ctx->meta->seq, &e, sizeof(e));
	return 0;
}

/* sockets */

/* Not the kernel's names: IG would render a kernel enum of the same name
 * with the kernel's values. */
enum ig_sock_state {
	ESTABLISHED = 1,
	SYN_SENT = 2,
	SYN_RECV = 3,
	FIN_WAIT1 = 4,
	FIN_WAIT2 = 5,
	TIME_WAIT = 6,
	CLOSE = 7,
	CLOSE_WAIT = 8,
	LAST_ACK = 9,
	LISTEN = 10,
	CLOSING = 11,
};

struct socket_entry {
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	enum ig_sock_state state_raw;
	gadget_uid uid;
};

GADGET_ITER(sockets, socket_entry);

static __always_inline void fill_socket(struct socket_entry *e, struct sock_common___ig *sk, __u16 proto)
{
	__u16 family = BPF_CORE_READ(sk, skc_family);

	e->src.proto_raw = e->dst.proto_raw = proto;
	e->src.port = BPF_CORE_READ(sk, skc_num);
	e->dst.port = bpf_ntohs(BPF_CORE_READ(sk, skc_dport));
	e->state_raw = BPF_CORE_READ(sk, skc_state);
	if (family == 2 /* AF_INET */) {
		e->src.version = e->dst.version = 4;
		e->src.addr_raw.v4 = BPF_CORE_READ(sk, skc_rcv_saddr);
		e->dst.addr_raw.v4 = BPF_CORE_READ(sk, skc_daddr);
	} else {
		e->src.version = e->dst.version = 6;
		BPF_CORE_READ_INTO(&e->src.addr_raw.v6, sk, skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&e->dst.addr_raw.v6, sk, skc_v6_daddr);
	}
}

SEC("iter/tcp")
GADGET_ITER_MEMBER(sockets)
int ig_snap_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common___ig *sk = (struct sock_common___ig *)ctx->sk_common;
	struct socket_entry e = {};

	if (!sk)
		return 0;
	fill_socket(&e, sk, 6 /* IPPROTO_TCP */);
	e.uid = ctx->uid;
	bpf_seq_write(ctx->meta->seq, &e, sizeof(e));
	return 0;
}

SEC("iter/udp")
GADGET_ITER_MEMBER(sockets)
int ig_snap_udp(struct bpf_iter__udp *ctx)
{
	struct sock_common___ig *sk = (struct sock_common___ig *)ctx->udp_sk;
	struct socket_entry e = {};

	if (!sk)
		return 0;
	fill_socket(&e, sk, 17 /* IPPROTO_UDP */);
	e.state_raw = 0; /* UDP sockets have no TCP state */
	e.uid = ctx->uid;
	bpf_seq_write(ctx->meta->seq, &e, sizeof(e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
