/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal stand-in for a generated vmlinux.h, for sluice's wasm-bpf test
 * applications (as gadgets/include/sluice/vmlinux.h is for the gadgets):
 * only the kernel types they touch, marked preserve_access_index so the
 * loader relocates each access against the running kernel's BTF.
 */
#ifndef __WB_VMLINUX_H
#define __WB_VMLINUX_H

#include <linux/types.h>
#include <linux/bpf.h>

typedef __u8 u8;
typedef __u32 u32;
typedef __u64 u64;
typedef int pid_t;
typedef _Bool bool;
enum { false = 0, true = 1 };

struct pt_regs;
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

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct task_struct {
	int pid;
	int tgid;
	int exit_code;
	struct task_struct *real_parent;
};

struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
};

struct trace_event_raw_sched_process_exec {
	struct trace_entry ent;
	__u32 __data_loc_filename;
	pid_t pid;
	pid_t old_pid;
};

struct trace_event_raw_sched_process_template {
	struct trace_entry ent;
	char comm[16];
	pid_t pid;
	int prio;
};

struct trace_event_raw_sys_enter {
	struct trace_entry ent;
	long id;
	unsigned long args[6];
};

#pragma clang attribute pop

#endif
