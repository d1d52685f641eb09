/* SPDX-License-Identifier: Apache-2.0 */
/* Small CO-RE helpers the built-in gadgets share. */
#ifndef __SLUICE_COMMON_H
#define __SLUICE_COMMON_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

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

#endif /* __SLUICE_COMMON_H */
