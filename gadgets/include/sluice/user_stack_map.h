/* SPDX-License-Identifier: Apache-2.0 */
/*
 * User stacks, with Inspektor Gadget's map and parameter names:
 *
 *   ig_ustack            the stack ids (addresses)
 *   ig_build_id          build id + offset per frame, declared with 0
 *                        entries and sized before load by the parameter
 *                        ig_build_id_max_entries (the <map>_max_entries
 *                        contract; see docs/gadgets.md)
 *   collect_ustack       parameter: collect user stacks at all
 *   collect_build_id     parameter: also record build ids
 *
 * gadget_get_user_stack(ctx, &ev->ustack_raw) fills a struct
 * gadget_user_stack; user space renders it as "[0]<build-id>+0x<offset>"
 * frames, with the symbol when the binary is on this host.
 */
#ifndef __SLUICE_USER_STACK_MAP_H
#define __SLUICE_USER_STACK_MAP_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <sluice/kernel_ig.h>
#include <sluice/types.h>
#include <sluice/macros.h>

const volatile bool collect_ustack = false;
GADGET_PARAM(collect_ustack);

const volatile bool collect_build_id = false;
GADGET_PARAM(collect_build_id);

#define GADGET_USER_MAX_STACK_DEPTH 127
#ifndef GADGET_USER_STACK_MAP_MAX_ENTRIES
#define GADGET_USER_STACK_MAP_MAX_ENTRIES 10000
#endif

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, GADGET_USER_MAX_STACK_DEPTH * sizeof(__u64));
	__uint(max_entries, GADGET_USER_STACK_MAP_MAX_ENTRIES);
} ig_ustack SEC(".maps");

const volatile int ig_build_id_max_entries = 1024;
GADGET_PARAM(ig_build_id_max_entries);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, GADGET_USER_MAX_STACK_DEPTH * sizeof(struct bpf_stack_build_id));
	__uint(max_entries, 0); /* sized by ig_build_id_max_entries */
} ig_build_id SEC(".maps");

static const struct bpf_stack_build_id gadget_empty_build_id[GADGET_USER_MAX_STACK_DEPTH] = {};

static __always_inline void gadget_get_user_stack(void *ctx, struct gadget_user_stack *us)
{
	struct task_struct___ig *task;
	struct inode___ig *inode;

	__builtin_memset(us, 0, sizeof(*us));
	if (!collect_ustack)
		return;
	us->stack_id = bpf_get_stackid(ctx, &ig_ustack, BPF_F_FAST_STACK_CMP | BPF_F_USER_STACK);
	us->boot_timestamp = bpf_ktime_get_boot_ns();
	task = (struct task_struct___ig *)bpf_get_current_task();
	inode = BPF_CORE_READ(task, mm, exe_file, f_inode);
	us->inode = BPF_CORE_READ(inode, i_ino);
	us->tgid_level0 = BPF_CORE_READ(task, tgid);
	us->pid_level0 = BPF_CORE_READ(task, pid);
	if (collect_build_id && us->stack_id >= 0) {
		struct bpf_stack_build_id *ids;

		if (bpf_map_update_elem(&ig_build_id, &us->stack_id, &gadget_empty_build_id, BPF_NOEXIST))
			return; /* already recorded */
		ids = bpf_map_lookup_elem(&ig_build_id, &us->stack_id);
		if (ids)
			bpf_get_stack(ctx, ids, GADGET_USER_MAX_STACK_DEPTH * sizeof(*ids),
				      BPF_F_USER_STACK | BPF_F_USER_BUILD_ID);
	}
}

#endif /* __SLUICE_USER_STACK_MAP_H */
