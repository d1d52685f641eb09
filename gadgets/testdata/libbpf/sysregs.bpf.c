// SPDX-License-Identifier: Apache-2.0
/*
 * A syscall argument tracer on raw_tp/sys_enter, which hands the program
 * the syscall's struct pt_regs: the registers are read through CO-RE, so
 * struct pt_regs (168 bytes on x86_64) is in the object's BTF, while the
 * event, 168 bytes too, is only in a local. A loader guessing by size
 * from BTF alone would decode every event as registers.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "sysregs.h"

const volatile pid_t targ_tgid = 0;
const volatile long targ_syscall = -1;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

SEC("raw_tp/sys_enter")
int sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	long id = (long)ctx->args[1];
	struct event *e;

	if (targ_tgid && (pid_tgid >> 32) != targ_tgid)
		return 0;
	if (targ_syscall >= 0 && id != targ_syscall)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->id = id;
	e->args[0] = BPF_CORE_READ(regs, di);
	e->args[1] = BPF_CORE_READ(regs, si);
	e->args[2] = BPF_CORE_READ(regs, dx);
	e->args[3] = BPF_CORE_READ(regs, r10);
	e->args[4] = BPF_CORE_READ(regs, r8);
	e->args[5] = BPF_CORE_READ(regs, r9);
	e->ip = BPF_CORE_READ(regs, ip);
	e->sp = BPF_CORE_READ(regs, sp);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
