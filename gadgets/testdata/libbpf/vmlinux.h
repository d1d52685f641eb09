/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A stand-in for the vmlinux.h that `bpftool btf dump file
 * /sys/kernel/btf/vmlinux format c` generates, which libbpf-tools and
 * libbpf-bootstrap programs include: only the kernel types the programs in
 * this directory touch, marked preserve_access_index (as bpftool marks
 * them), so every access is a CO-RE relocation. Its name matters: sluice
 * treats types declared in a file called vmlinux.h as kernel types.
 */
#ifndef __VMLINUX_H__
#define __VMLINUX_H__

#include <linux/types.h>
#include <linux/bpf.h>

typedef int pid_t;
typedef unsigned long size_t;
typedef unsigned int uid_t;
typedef _Bool bool;
enum {
	false = 0,
	true = 1,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

/* x86_64's, as the running kernel's BTF has it (168 bytes). */
struct pt_regs {
	unsigned long r15;
	unsigned long r14;
	unsigned long r13;
	unsigned long r12;
	unsigned long bp;
	unsigned long bx;
	unsigned long r11;
	unsigned long r10;
	unsigned long r9;
	unsigned long r8;
	unsigned long ax;
	unsigned long cx;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
	unsigned long ip;
	unsigned long cs;
	unsigned long flags;
	unsigned long sp;
	unsigned long ss;
};

struct task_struct {
	int pid;
	int tgid;
	char comm[16];
	struct task_struct *real_parent;
};

struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
};

struct trace_event_raw_sys_enter {
	struct trace_entry ent;
	long id;
	unsigned long args[6];
};

struct trace_event_raw_sys_exit {
	struct trace_entry ent;
	long id;
	long ret;
};

struct trace_event_raw_signal_generate {
	struct trace_entry ent;
	int sig;
	int errno;
	int code;
	char comm[16];
	pid_t pid;
	int group;
	int result;
	char __data[0];
};

struct trace_event_raw_inet_sock_set_state {
	struct trace_entry ent;
	const void *skaddr;
	int oldstate;
	int newstate;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u16 protocol;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
	char __data[0];
};

#pragma clang attribute pop

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define TCP_SYN_SENT 2

#endif /* __VMLINUX_H__ */
