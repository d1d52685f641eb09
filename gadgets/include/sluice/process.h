/* SPDX-License-Identifier: Apache-2.0 */
/* Inspektor Gadget's process helpers, on the kernel_ig.h stand-ins. */
#ifndef __SLUICE_PROCESS_H
#define __SLUICE_PROCESS_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <sluice/kernel_ig.h>
#include <sluice/types.h>

/* gadget_process_populate fills IG's struct gadget_process for the current
 * task: comm, tgid, tid, mount namespace, uid/gid and the real parent. */
static __always_inline void gadget_process_populate(struct gadget_process *p)
{
	struct task_struct___ig *task = (struct task_struct___ig *)bpf_get_current_task();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();

	bpf_get_current_comm(p->comm, sizeof(p->comm));
	p->pid = pid_tgid >> 32;
	p->tid = (__u32)pid_tgid;
	p->mntns_id = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	p->creds.uid = (__u32)uid_gid;
	p->creds.gid = uid_gid >> 32;
	p->parent.pid = BPF_CORE_READ(task, real_parent, tgid);
	BPF_CORE_READ_STR_INTO(&p->parent.comm, task, real_parent, comm);
}

/* gadget_get_current_netns_id returns the inode number of the current
 * task's network namespace, as in /proc/<pid>/ns/net. */
static __always_inline __u32 gadget_get_current_netns_id(void)
{
	struct task_struct___ig *task = (struct task_struct___ig *)bpf_get_current_task();

	return BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
}

#endif /* __SLUICE_PROCESS_H */
