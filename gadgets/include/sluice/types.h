/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Typedefs whose *names* tell user space how to render a field (see
 * docs/event-format.md): the decoder keys on the typedef name, not on the
 * underlying integer, so a field must be declared with the typedef itself.
 * The names and layouts match Inspektor Gadget's; gadget_ret,
 * gadget_strlist, gadget_file_flags, gadget_file_mode and
 * gadget_histogram_linear_slot__* are sluice extensions.
 *
 * Name a member X_raw (IG's spelling) and the event carries the readable X
 * beside the number X_raw, rendered exactly as Inspektor Gadget renders it;
 * name it X and the event carries the same two keys in sluice's rendering.
 */
#ifndef __SLUICE_TYPES_H
#define __SLUICE_TYPES_H

#ifndef TASK_COMM_LEN
#define TASK_COMM_LEN 16
#endif

typedef __u64 gadget_timestamp;   /* bpf_ktime_get_boot_ns() */
typedef __u64 gadget_mntns_id;
typedef __u32 gadget_netns_id;
typedef __u32 gadget_signal;
typedef __u32 gadget_errno;       /* positive errno */
typedef __u32 gadget_uid;
typedef __u32 gadget_gid;
typedef __u64 gadget_syscall;
typedef __u32 gadget_file_flags;
typedef __u32 gadget_file_mode;
typedef __u32 gadget_pid;
typedef __u32 gadget_ppid;
typedef __u32 gadget_tid;

/* Element types: declare `gadget_comm comm[TASK_COMM_LEN]`. */
typedef char gadget_comm;
typedef char gadget_pcomm;

typedef __u64 gadget_bytes;      /* rendered "10 kB" */
typedef __u64 gadget_duration;   /* ns, rendered "1.20ms" */

/* A stack id from bpf_get_stackid() on ig_kstack (include
 * <sluice/kernel_stack_map.h>), rendered as the symbolised stack. */
typedef __u32 gadget_kernel_stack;

/* Metrics: counters and gauges render as numbers; an array of histogram
 * slots renders as a list and is drawn as a bar histogram in tables.
 * gadget_histogram_slot__* count log2 buckets (slot i: [2^i, 2^(i+1)));
 * gadget_histogram_linear_slot__* count one value per slot. */
typedef __u32 gadget_counter__u32;
typedef __u64 gadget_counter__u64;
typedef __u32 gadget_gauge__u32;
typedef __u64 gadget_gauge__u64;
typedef __u32 gadget_histogram_slot__u32;
typedef __u64 gadget_histogram_slot__u64;
typedef __u32 gadget_histogram_linear_slot__u32;
typedef __u64 gadget_histogram_linear_slot__u64;

/* A syscall's return: a value, or a negative errno (rendered by name). */
typedef __s64 gadget_ret;

/*
 * Element type of an array holding NUL-separated strings (`gadget_strlist
 * args[N]`). It is rendered as a list of strings, clipped where the record
 * ends, so put it last and emit only the used part of it.
 */
typedef char gadget_strlist;

union gadget_ip_addr_t {
	__u8 v6[16];
	__u32 v4;
};

struct gadget_l3endpoint_t {
	union gadget_ip_addr_t addr_raw;
	__u8 version; /* 4 or 6 */
};

struct gadget_l4endpoint_t {
	union gadget_ip_addr_t addr_raw;
	__u16 port;       /* host byte order */
	__u16 proto_raw;  /* IPPROTO_* */
	__u8 version;     /* 4 or 6 */
};

/* IG's process description, filled by gadget_process_populate(). */
struct gadget_creds {
	gadget_uid uid;
	gadget_gid gid;
};

struct gadget_parent {
	gadget_pcomm comm[TASK_COMM_LEN];
	gadget_ppid pid;
};

struct gadget_process {
	gadget_comm comm[TASK_COMM_LEN];
	gadget_pid pid;
	gadget_tid tid;
	gadget_mntns_id mntns_id;
	struct gadget_creds creds;
	struct gadget_parent parent;
};

/*
 * A user stack: filled by gadget_get_user_stack() (<sluice/user_stack_map.h>)
 * and rendered as build-id + offset per frame, symbolised when the binary
 * is on this host. The members the decoder reads are named as IG names them.
 */
struct gadget_user_stack {
	__u32 major;
	__u32 minor;
	__u64 inode;
	__u64 mtime_sec;
	__u32 mtime_nsec;
	__u32 base_addr_hash;
	__s32 stack_id;
	__u32 tgid_level0;
	__u32 pid_level0;
	__u32 pidns_level0;
	__u32 pid_level1;
	__u32 pidns_level1;
	__u64 otel_correlation_id;
	__u64 boot_timestamp;
};

#endif /* __SLUICE_TYPES_H */
