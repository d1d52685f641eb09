/* SPDX-License-Identifier: Apache-2.0 */
#ifndef __PROCEVENTS_H
#define __PROCEVENTS_H

#define FILENAME_LEN 64

enum event_kind {
	EVENT_EXEC = 1,
	EVENT_EXIT = 2,
};

struct event {
	enum event_kind kind;
	__u32 pid;
	union {
		struct {
			__u32 ppid;
			char filename[FILENAME_LEN];
		} exec;
		struct {
			int code;
			__u64 ts_ns;
		} exit;
	} u;
};

#endif /* __PROCEVENTS_H */
