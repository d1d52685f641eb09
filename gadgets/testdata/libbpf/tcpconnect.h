/* SPDX-License-Identifier: Apache-2.0 */
#ifndef __TCPCONNECT_H
#define __TCPCONNECT_H

#define TASK_COMM_LEN 16

struct event {
	union {
		__u32 saddr_v4;
		__u8 saddr_v6[16];
	};
	union {
		__u32 daddr_v4;
		__u8 daddr_v6[16];
	};
	char task[TASK_COMM_LEN];
	__u64 ts_us;
	__u32 af; /* AF_INET or AF_INET6 */
	__u32 pid;
	__u32 uid;
	__u16 dport;
};

#endif /* __TCPCONNECT_H */
