/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal, hand-written stand-in for a generated vmlinux.h: only the
 * kernel types the built-in gadgets touch, and only the members they read.
 * Every struct is marked preserve_access_index, so clang emits CO-RE
 * relocations and the loader moves each access to the member's offset in
 * the running kernel's BTF; the layouts below need not match any kernel.
 * Committing this instead of a multi-megabyte dump keeps builds
 * reproducible and reviewable.
 *
 * UAPI constants and the types libbpf's bpf_helper_defs.h names come from
 * <linux/bpf.h> (Debian's linux-libc-dev).
 */
#ifndef __SLUICE_VMLINUX_H
#define __SLUICE_VMLINUX_H

#include <linux/types.h>
#include <linux/bpf.h>

/* Types bpf_helper_defs.h mentions only through pointers. */
struct pt_regs;
struct task_struct;
struct inode;
struct socket;
struct file;
struct path;
struct btf_ptr;
struct linux_binprm;
struct seq_file;
struct tcp6_sock;
struct tcp_sock;
struct tcp_timewait_sock;
struct tcp_request_sock;
struct udp6_sock;
struct unix_sock;
struct mptcp_sock;
struct cgroup;
struct sk_buff;
struct xdp_buff;
struct bpf_dynptr;

typedef _Bool bool;
enum {
	false = 0,
	true = 1,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct ns_common {
	unsigned int inum;
};

struct mnt_namespace {
	struct ns_common ns;
};

struct nsproxy {
	struct mnt_namespace *mnt_ns;
};

typedef struct {
	int counter;
} atomic_t;

typedef struct {
	__u32 val;
} kuid_t;

typedef struct {
	__u32 val;
} kgid_t;

struct cred {
	kuid_t uid;
	kgid_t gid;
	kuid_t suid;
	kgid_t sgid;
	kuid_t euid;
	kgid_t egid;
	kuid_t fsuid;
	kgid_t fsgid;
};

struct signal_struct {
	atomic_t live;
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};

struct files_struct {
	struct fdtable *fdt;
};

struct qstr {
	const unsigned char *name;
};

struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
};

struct super_block {
	__u32 s_dev;
};

struct inode {
	unsigned long i_ino;
	unsigned short i_mode;
	struct super_block *i_sb;
};

struct vfsmount;

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
};

struct file {
	struct path f_path;
	struct inode *f_inode;
	void *private_data;
};

struct task_struct {
	int pid;
	int tgid;
	int exit_code;
	__u64 start_boottime;
	char comm[16];
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	struct nsproxy *nsproxy;
	const struct cred *cred;
	struct signal_struct *signal;
	struct files_struct *files;
};

struct in6_addr {
	union {
		__u8 u6_addr8[16];
	} in6_u;
};

/* In the kernel the address and port members sit in anonymous structs and
 * unions (skc_addrpair, skc_portpair); CO-RE matching looks through
 * anonymous members by name. */
struct sock_common {
	__u32 skc_daddr;
	__u32 skc_rcv_saddr;
	__u16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
};

struct sock {
	struct sock_common __sk_common;
	__u16 sk_type;
	__u16 sk_protocol;
};

struct socket {
	short type;
	struct sock *sk;
};

struct bpf_prog_aux {
	__u32 id;
	char name[16];
};

struct bpf_prog {
	enum bpf_prog_type type;
	struct bpf_prog_aux *aux;
};

struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
};

/* Context of syscalls/sys_enter_* (args start at offset 16). */
struct trace_event_raw_sys_enter {
	struct trace_entry ent;
	long id;
	unsigned long args[6];
};

/* Context of syscalls/sys_exit_*. */
struct trace_event_raw_sys_exit {
	struct trace_entry ent;
	long id;
	long ret;
};

/* Context of sched/sched_process_exit; group_dead exists since 6.16. */
struct trace_event_raw_sched_process_exit {
	struct trace_entry ent;
	char comm[16];
	int pid;
	int prio;
	bool group_dead;
};

/* Context of sock/inet_sock_set_state. */
struct trace_event_raw_inet_sock_set_state {
	struct trace_entry ent;
	const void *skaddr;
	int oldstate;
	int newstate;
	__u16 sport; /* host byte order */
	__u16 dport; /* host byte order */
	__u16 family;
	__u16 protocol;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
};

#pragma clang attribute pop

/* include/uapi/linux/openat2.h */
struct open_how {
	__u64 flags;
	__u64 mode;
	__u64 resolve;
};

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7
#define TCP_LISTEN 10
#define TCP_NEW_SYN_RECV 12
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

#endif /* __SLUICE_VMLINUX_H */
