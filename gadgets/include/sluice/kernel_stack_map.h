/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kernel stacks, with Inspektor Gadget's map name: a gadget stores a stack
 * with gadget_get_kernel_stack(ctx) and puts the id in a
 * gadget_kernel_stack member; user space reads ig_kstack and renders the
 * frames with kallsyms ("[0]do_sys_openat2; [1]__x64_sys_openat; ...").
 */
#ifndef __SLUICE_KERNEL_STACK_MAP_H
#define __SLUICE_KERNEL_STACK_MAP_H

#include <bpf/bpf_helpers.h>

#define GADGET_KERNEL_MAX_STACK_DEPTH 127
#ifndef GADGET_KERNEL_STACK_MAP_MAX_ENTRIES
#define GADGET_KERNEL_STACK_MAP_MAX_ENTRIES 10000
#endif

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, GADGET_KERNEL_MAX_STACK_DEPTH * sizeof(__u64));
	__uint(max_entries, GADGET_KERNEL_STACK_MAP_MAX_ENTRIES);
} ig_kstack SEC(".maps");

/* The kernel stack id (>= 0), or a negative errno. */
static __always_inline long gadget_get_kernel_stack(void *ctx)
{
	return bpf_get_stackid(ctx, &ig_kstack, BPF_F_FAST_STACK_CMP);
}

#endif /* __SLUICE_KERNEL_STACK_MAP_H */
