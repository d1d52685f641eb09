// SPDX-License-Identifier: Apache-2.0
/*
 * snapshot_process: every process running now, one element per thread
 * group, from a task iterator (iter/task): the baseline a security team
 * compares trace_exec's stream against.
 *
 * Fields (struct process):
 *   timestamp gadget_timestamp  when the snapshot saw it (the envelope's
 *                               time: the first timestamp member)
 *   comm      char[16]          the process's comm
 *   pid       gadget_pid        tgid
 *   ppid      gadget_ppid       parent's tgid
 *   uid, gid  gadget_uid/gid    real credentials
 *   mntns_id  gadget_mntns_id   mount namespace
 *   started   gadget_timestamp  when the process started
 *   exe       char[256]         file name of its executable, untruncated
 *                               ("" for kernel threads); differing from
 *                               comm, it shows a process that renamed
 *                               itself (prctl PR_SET_NAME)
 *
 * The full path would need bpf_d_path, which refuses the pointers an
 * iterator reaches by walking task->mm->exe_file.
 *
 * Params: threads (bool, default false) lists every thread, not only
 * thread group leaders. Common filters apply (docs/gadgets.md#filters).
 */
#include <sluice/gadget.h>
#include <sluice/filter.h>

#define PATH_LEN 256

struct process {
	gadget_timestamp timestamp;
	gadget_comm comm[TASK_COMM_LEN];
	gadget_pid pid;
	gadget_tid tid;
	gadget_ppid ppid;
	gadget_uid uid;
	gadget_gid gid;
	gadget_mntns_id mntns_id;
	gadget_timestamp started;
	char exe[PATH_LEN];
};

const volatile bool threads = false;
GADGET_PARAM(threads);

GADGET_SNAPSHOTTER(processes, process, snapshot_task);

/* Local CO-RE flavors of what vmlinux.h does not declare. */
struct bpf_iter_meta___sluice {
	struct seq_file *seq;
} __attribute__((preserve_access_index));

struct bpf_iter__task___sluice {
	struct bpf_iter_meta___sluice *meta;
	struct task_struct *task;
} __attribute__((preserve_access_index));

struct mm_struct___sluice {
	struct file *exe_file;
} __attribute__((preserve_access_index));

struct task_struct___sluice {
	struct mm_struct___sluice *mm;
} __attribute__((preserve_access_index));

/* A per-CPU scratch element: the struct is too large for the stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct process);
} scratch SEC(".maps");

SEC("iter/task")
int snapshot_task(struct bpf_iter__task___sluice *ctx)
{
	struct task_struct *task = ctx->task;
	struct seq_file *seq = ctx->meta->seq;
	struct mm_struct___sluice *mm;
	struct file *exe;
	struct process *p;
	__u32 zero = 0;

	if (!task)
		return 0;
	if (!threads && task->pid != task->tgid)
		return 0;
	p = bpf_map_lookup_elem(&scratch, &zero);
	if (!p)
		return 0;
	__builtin_memset(p, 0, sizeof(*p));
	p->timestamp = bpf_ktime_get_boot_ns();
	p->pid = task->tgid;
	p->tid = task->pid;
	p->ppid = BPF_CORE_READ(task, real_parent, tgid);
	p->uid = BPF_CORE_READ(task, cred, uid.val);
	p->gid = BPF_CORE_READ(task, cred, gid.val);
	p->mntns_id = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	p->started = BPF_CORE_READ(task, start_boottime);
	BPF_CORE_READ_STR_INTO(&p->comm, task, comm);
	if (gadget_should_discard_data(p->mntns_id, p->pid, p->tid, p->comm, p->uid, p->gid))
		return 0;
	mm = BPF_CORE_READ((struct task_struct___sluice *)task, mm);
	if (mm) {
		exe = BPF_CORE_READ(mm, exe_file);
		if (exe)
			bpf_probe_read_kernel_str(p->exe, sizeof(p->exe),
						  BPF_CORE_READ(exe, f_path.dentry, d_name.name));
	}
	bpf_seq_write(seq, p, sizeof(*p));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
