/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Typedefs whose *names* tell user space how to render a field (see
 * docs/event-format.md): the decoder keys on the typedef name, not on the
 * underlying integer, so a field must be declared with the typedef itself.
 * The names match Inspektor Gadget's; gadget_ret and gadget_strlist are
 * sluice extensions.
 */
#ifndef __SLUICE_TYPES_H
#define __SLUICE_TYPES_H

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

#endif /* __SLUICE_TYPES_H */
