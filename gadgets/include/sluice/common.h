/* SPDX-License-Identifier: Apache-2.0 */
/* Small CO-RE helpers the built-in gadgets share. */
#ifndef __SLUICE_COMMON_H
#define __SLUICE_COMMON_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#ifndef TASK_COMM_LEN
#define TASK_COMM_LEN 16
#endif

/* The inode number of the current task's mount namespace, as in
 * /proc/<pid>/ns/mnt; 0 while the task is exiting (nsproxy gone). */
static __always_inline __u64 gadget_get_current_mntns_id(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
}

/* The tgid of the current task's parent (real_parent, not the tracer). */
static __always_inline __u32 gadget_get_current_ppid(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, real_parent, tgid);
}

/* The current task's open file behind fd, or NULL. */
static __always_inline struct file *gadget_get_current_file(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds, *f = NULL;

	if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* The sock of the current task's socket fd, or NULL. Only call it for an
 * fd known to be a socket (a call on it succeeded): the file's
 * private_data is read as a struct socket without checking the file type. */
static __always_inline struct sock *gadget_get_current_sock(long fd)
{
	struct file *f = gadget_get_current_file(fd);
	struct socket *s;

	if (!f)
		return NULL;
	s = BPF_CORE_READ(f, private_data);
	if (!s)
		return NULL;
	return BPF_CORE_READ(s, sk);
}

#endif /* __SLUICE_COMMON_H */
