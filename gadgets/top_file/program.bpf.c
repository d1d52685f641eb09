// SPDX-License-Identifier: Apache-2.0
/*
 * top_file: which processes read and write which files, and how much: a
 * map of per-process, per-file counters user space drains every interval
 * (GADGET_MAPITER), so each snapshot holds the activity since the last.
 *
 * Key (struct file_key):
 *   pid, tid   gadget_pid, gadget_tid  the process and thread
 *   dev        __u32                   the file system's device
 *   ino        __u64                   the file's inode
 * Value (struct file_stat):
 *   comm       char[16]                the process's comm
 *   mntns_id   gadget_mntns_id         its mount namespace
 *   file       char[256]               the file's name (the last
 *                                      path component)
 *   type       enum file_type          REGULAR, SOCKET or OTHER
 *   reads      __u64                   read calls that returned data
 *   writes     __u64                   write calls that wrote data
 *   rbytes     __u64                   bytes read
 *   wbytes     __u64                   bytes written
 *
 * Params: all_files (bool, default false) counts every kind of file
 * (sockets, pipes, devices), not only regular files.
 *
 * Tracepoints: syscalls/sys_{enter,exit}_{read,write,pread64,pwrite64,
 * readv,writev}: the bytes a call returned, not the bytes it asked for.
 */
#include <sluice/gadget.h>
#include <sluice/filter.h>

#define NAME_LEN 256
#define S_IFMT 0170000
#define S_IFREG 0100000
#define S_IFSOCK 0140000

enum file_type {
	REGULAR = 0,
	SOCKET = 1,
	OTHER = 2,
};

struct file_key {
	gadget_pid pid;
	gadget_tid tid;
	__u32 dev;
	__u32 __pad; /* zeroed: keys compare byte for byte */
	__u64 ino;
};

struct file_stat {
	gadget_comm comm[TASK_COMM_LEN];
	gadget_mntns_id mntns_id;
	char file[NAME_LEN];
	enum file_type type;
	__u64 reads;
	__u64 writes;
	__u64 rbytes;
	__u64 wbytes;
};

const volatile bool all_files = false;
GADGET_PARAM(all_files);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct file_key);
	__type(value, struct file_stat);
} stats SEC(".maps");
GADGET_MAPITER(files, stats);

/* Thread inside a call -> its fd, with the direction in the top bit. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

#define WRITE_BIT (1ULL << 63)

/* Scratch for a new entry: too large for the stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct file_stat);
} scratch SEC(".maps");

static __always_inline int enter(struct trace_event_raw_sys_enter *ctx, bool write)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 v = (__u32)ctx->args[0];

	if (gadget_should_discard_data_current())
		return 0;
	if (write)
		v |= WRITE_BIT;
	bpf_map_update_elem(&calls, &tid, &v, BPF_ANY);
	return 0;
}

static __always_inline int exit_io(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, zero = 0;
	struct file_key key;
	struct file_stat *st;
	struct file *f;
	struct inode *inode;
	__u64 *call, v;
	long ret = ctx->ret;
	__u16 mode;
	bool write;

	call = bpf_map_lookup_elem(&calls, &tid);
	if (!call)
		return 0;
	v = *call;
	bpf_map_delete_elem(&calls, &tid);
	if (ret <= 0)
		return 0;
	write = v & WRITE_BIT;
	f = gadget_get_current_file((__u32)v);
	if (!f)
		return 0;
	inode = BPF_CORE_READ(f, f_inode);
	mode = BPF_CORE_READ(inode, i_mode) & S_IFMT;
	if (!all_files && mode != S_IFREG)
		return 0;
	__builtin_memset(&key, 0, sizeof(key));
	key.pid = id >> 32;
	key.tid = tid;
	key.dev = BPF_CORE_READ(inode, i_sb, s_dev);
	key.ino = BPF_CORE_READ(inode, i_ino);
	st = bpf_map_lookup_elem(&stats, &key);
	if (!st) {
		st = bpf_map_lookup_elem(&scratch, &zero);
		if (!st)
			return 0;
		__builtin_memset(st, 0, sizeof(*st));
		bpf_get_current_comm(st->comm, sizeof(st->comm));
		st->mntns_id = gadget_get_current_mntns_id();
		st->type = mode == S_IFREG ? REGULAR : mode == S_IFSOCK ? SOCKET : OTHER;
		bpf_probe_read_kernel_str(st->file, sizeof(st->file), BPF_CORE_READ(f, f_path.dentry, d_name.name));
		bpf_map_update_elem(&stats, &key, st, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&stats, &key);
		if (!st)
			return 0;
	}
	if (write) {
		__sync_fetch_and_add(&st->writes, 1);
		__sync_fetch_and_add(&st->wbytes, ret);
	} else {
		__sync_fetch_and_add(&st->reads, 1);
		__sync_fetch_and_add(&st->rbytes, ret);
	}
	return 0;
}

#define IO_CALL(name, is_write)                                       \
	SEC("tracepoint/syscalls/sys_enter_" #name)                  \
	int top_enter_##name(struct trace_event_raw_sys_enter *ctx)   \
	{                                                             \
		return enter(ctx, is_write);                          \
	}                                                             \
	SEC("tracepoint/syscalls/sys_exit_" #name)                   \
	int top_exit_##name(struct trace_event_raw_sys_exit *ctx)     \
	{                                                             \
		return exit_io(ctx);                                  \
	}

IO_CALL(read, false)
IO_CALL(write, true)
IO_CALL(pread64, false)
IO_CALL(pwrite64, true)
IO_CALL(readv, false)
IO_CALL(writev, true)

char LICENSE[] SEC("license") = "GPL";
