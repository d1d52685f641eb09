/* SPDX-License-Identifier: Apache-2.0 */
#ifndef __SYSREGS_H
#define __SYSREGS_H

#define TASK_COMM_LEN 16
#define NREGS 18

/* 168 bytes, as x86_64's struct pt_regs. */
struct event {
	__u32 pid;
	__u32 tid;
	char comm[TASK_COMM_LEN];
	__u64 id;
	__u64 args[6];
	__u64 ip;
	__u64 sp;
	__u64 pad[9];
};

#endif /* __SYSREGS_H */
