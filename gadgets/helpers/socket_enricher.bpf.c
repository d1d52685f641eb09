// SPDX-License-Identifier: Apache-2.0
/*
 * sluice's socket enricher: fills Inspektor Gadget's socket map
 * (gadget_sockets) with who owns each TCP and UDP socket, for gadgets that
 * look sockets up (<sluice/sockets_map.h>, IG's sockets-map.h).
 *
 *   sluice_sockets_sync    iter/task_file: every socket of every process,
 *                          run by user space at start and every second;
 *   sluice_sock_{enter,exit}_{bind,connect}: a socket is entered as soon as
 *                          bind(2) or connect(2) gives it its local port,
 *                          before its first packet.
 *
 * Each entry carries the sync generation (config[0]) of its last update;
 * user space removes entries two generations old (closed sockets).
 *
 * struct gadget_socket_value here is the layout gadgets are relocated
 * against: user space hands its BTF to the loader as an extra CO-RE target.
 */
#include <sluice/gadget.h>

#define S_IFMT 0170000
#define S_IFSOCK 0140000
#define AF_INET 2
#define AF_INET6 10

struct gadget_socket_key {
	__u32 netns;
	__u16 family;
	__u8 proto;
	__u16 port;
};

struct gadget_socket_value {
	__u64 mntns;
	__u64 pid_tgid;
	__u64 uid_gid;
	char task[TASK_COMM_LEN];
	char ptask[TASK_COMM_LEN];
	__u64 sock;
	__u64 deletion_timestamp;
	__u32 ppid;
	__u32 ptid;
	char ipv6only;
	__u64 sluice_gen;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct gadget_socket_key);
	__type(value, struct gadget_socket_value);
} gadget_sockets SEC(".maps");

/* config[0]: the current sync generation. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} config SEC(".maps");

/* The fd a thread passed to bind/connect, until the call returns. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
} pending_fd SEC(".maps");

static __always_inline void record(struct task_struct___ig *task, __u32 tid, struct file___ig *file)
{
	struct gadget_socket_value v = {};
	struct gadget_socket_key key = {};
	struct socket___ig *sock;
	struct sock___ig *sk;
	__u32 zero = 0;
	__u64 *gen;

	if ((BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return;
	key.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (key.family != AF_INET && key.family != AF_INET6)
		return;
	key.proto = BPF_CORE_READ(sk, sk_protocol);
	if (key.proto != 6 && key.proto != 17)
		return;
	key.port = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (!key.port)
		return; /* no local port yet */
	key.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);

	v.mntns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	v.pid_tgid = ((__u64)BPF_CORE_READ(task, tgid) << 32) | tid;
	v.uid_gid = BPF_CORE_READ(task, cred, uid.val) | (__u64)BPF_CORE_READ(task, cred, gid.val) << 32;
	BPF_CORE_READ_STR_INTO(&v.task, task, comm);
	BPF_CORE_READ_STR_INTO(&v.ptask, task, real_parent, comm);
	v.ppid = BPF_CORE_READ(task, real_parent, tgid);
	v.sock = (__u64)sk;
	v.ipv6only = BPF_CORE_READ_BITFIELD_PROBED(&sk->__sk_common, skc_ipv6only);
	gen = bpf_map_lookup_elem(&config, &zero);
	if (gen)
		v.sluice_gen = *gen;
	bpf_map_update_elem(&gadget_sockets, &key, &v, BPF_ANY);
}

SEC("iter/task_file")
int sluice_sockets_sync(struct bpf_iter__task_file *ctx)
{
	struct task_struct___ig *task = (struct task_struct___ig *)ctx->task;
	struct file___ig *file = (struct file___ig *)ctx->file;

	if (task && file)
		record(task, task->pid, file);
	return 0;
}

static __always_inline int enter(long fd)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u32 f = fd;

	bpf_map_update_elem(&pending_fd, &tid, &f, BPF_ANY);
	return 0;
}

static __always_inline int leave(long ret)
{
	struct task_struct___ig *task = (struct task_struct___ig *)bpf_get_current_task();
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct fdtable___ig *fdt;
	struct file___ig *file = 0;
	__u32 *fd;

	fd = bpf_map_lookup_elem(&pending_fd, &tid);
	if (!fd)
		return 0;
	__u32 n = *fd;
	bpf_map_delete_elem(&pending_fd, &tid);
	/* A non-blocking connect returns EINPROGRESS with the port set. */
	if (ret < 0 && ret != -115)
		return 0;
	fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || n >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file___ig **fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&file, sizeof(file), &fds[n]);
	if (file)
		record(task, tid, file);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_bind")
int sluice_sock_enter_bind(struct trace_event_raw_sys_enter *ctx) { return enter(ctx->args[0]); }

SEC("tracepoint/syscalls/sys_exit_bind")
int sluice_sock_exit_bind(struct trace_event_raw_sys_exit *ctx) { return leave(ctx->ret); }

SEC("tracepoint/syscalls/sys_enter_connect")
int sluice_sock_enter_connect(struct trace_event_raw_sys_enter *ctx) { return enter(ctx->args[0]); }

SEC("tracepoint/syscalls/sys_exit_connect")
int sluice_sock_exit_connect(struct trace_event_raw_sys_exit *ctx) { return leave(ctx->ret); }

char LICENSE[] SEC("license") = "GPL";
