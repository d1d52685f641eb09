/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kernel types the Inspektor Gadget-style helpers and gadget kinds need
 * (processes, iterators, sockets, block requests), kept apart from
 * vmlinux.h. Like vmlinux.h they are CO-RE stand-ins: every struct is
 * preserve_access_index, so only member names and types matter. Members of
 * structs vmlinux.h already declares come as ___ig flavours (CO-RE ignores
 * the ___ suffix when it matches kernel types); the iterator contexts keep
 * their kernel names, which the verifier checks.
 */
#ifndef __SLUICE_KERNEL_IG_H
#define __SLUICE_KERNEL_IG_H

#include <sluice/vmlinux.h>
#include <bpf/bpf_endian.h>

/* IG's gadgets declare parameters with the kernel's typedefs. */
typedef int pid_t;
typedef unsigned int uid_t;
typedef unsigned int gid_t;

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct net___ig {
	struct ns_common ns;
};

struct nsproxy___ig {
	struct mnt_namespace *mnt_ns;
	struct net___ig *net_ns;
};

struct inode___ig {
	unsigned long i_ino;
	unsigned short i_mode;
};

struct path___ig {
	void *mnt;
	void *dentry;
};

struct file___ig {
	struct inode___ig *f_inode;
	struct path___ig f_path;
	void *private_data;
};

struct kuid___ig {
	unsigned int val;
};

struct cred___ig {
	struct kuid___ig uid;
	struct kuid___ig gid; /* kgid_t: the same shape */
};

struct mm_struct___ig {
	struct file___ig *exe_file;
};

struct task_struct___ig {
	int pid;
	int tgid;
	char comm[16];
	struct task_struct___ig *real_parent;
	struct nsproxy___ig *nsproxy;
	struct mm_struct___ig *mm;
	const struct cred___ig *cred;
	struct files_struct___ig *files;
	unsigned int flags;
};

/* Iterator contexts (include/linux/bpf.h, __bpf_md_ptr members). */
struct bpf_iter_meta {
	struct seq_file *seq;
	__u64 session_id;
	__u64 seq_num;
};

struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
};

struct bpf_iter__task_file {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
	__u32 fd;
	struct file *file;
};

struct possible_net___ig {
	struct net___ig *net;
};

struct sock_common___ig {
	union {
		struct {
			__be32 skc_daddr;
			__be32 skc_rcv_saddr;
		};
	};
	union {
		struct {
			__be16 skc_dport;
			__u16 skc_num;
		};
	};
	unsigned short skc_family;
	volatile unsigned char skc_state;
	unsigned char skc_reuse : 4;
	unsigned char skc_reuseport : 1;
	unsigned char skc_ipv6only : 1;
	struct possible_net___ig skc_net;
	struct {
		__u8 in6_u[16];
	} skc_v6_daddr;
	struct {
		__u8 in6_u[16];
	} skc_v6_rcv_saddr;
};

struct sock___ig {
	struct sock_common___ig __sk_common;
	__u16 sk_protocol;
};

struct socket___ig {
	struct sock___ig *sk;
};

struct fdtable___ig {
	unsigned int max_fds;
	struct file___ig **fd;
};

struct files_struct___ig {
	struct fdtable___ig *fdt;
};

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
	__u32 uid;
};

struct udp_sock;
struct bpf_iter__udp {
	struct bpf_iter_meta *meta;
	struct udp_sock *udp_sk;
	__u32 uid;
	int bucket;
};

struct bpf_iter__bpf_map_elem {
	struct bpf_iter_meta *meta;
	struct bpf_map *map;
	void *key;
	void *value;
};

/* Contexts of block/block_rq_issue and block/block_rq_complete. */
struct trace_event_raw_block_rq {
	struct trace_entry ent;
	__u32 dev;
	__u64 sector;
	unsigned int nr_sector;
	unsigned int bytes;
};

struct trace_event_raw_block_rq_completion {
	struct trace_entry ent;
	__u32 dev;
	__u64 sector;
	unsigned int nr_sector;
	int error;
};

#pragma clang attribute pop

#endif /* __SLUICE_KERNEL_IG_H */
