// SPDX-License-Identifier: Apache-2.0
/*
 * An Inspektor Gadget-style tracer with a member of every special type,
 * spelled as IG's gadgets spell them (X_raw), for the tests of IG's field
 * rendering (sources/decode, sources). One event per getpgid(2) call of
 * process target_tgid (IG's parameter name); every member but the process,
 * the timestamp, the stacks and netns_id is a constant:
 *
 *   error_raw = ENOENT (2)       sig_raw = SIGUSR1 (10)
 *   syscall_raw = the syscall    size_raw = 10240 bytes
 *   latency_raw = 1.5 ms         owner_raw = 0, owner_group_raw = 4242
 *   type_raw = EV_CLOSE          flags_raw = FLAG_WR|FLAG_CREAT|FLAG_TRUNC
 *   local = 127.0.0.1            remote = [::1]:53/UDP
 *   calls = 7, ok = true, name = "ig-style"
 *
 * It includes the user stack map, so it also carries IG's
 * ig_build_id / ig_build_id_max_entries contract (a map declared with 0
 * entries and sized by a parameter before load).
 */
#include <sluice/gadget.h>
#include <sluice/kernel_stack_map.h>
#include <sluice/user_stack_map.h>

enum ev_type {
	EV_OPEN = 1,
	EV_CLOSE = 2,
};

/* IG renders an enum whose name ends in _set as the flags it holds. */
enum open_flags_set {
	FLAG_RD = 0,
	FLAG_WR = 1,
	FLAG_CREAT = 0x40,
	FLAG_TRUNC = 0x200,
};

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	gadget_errno error_raw;
	gadget_signal sig_raw;
	gadget_syscall syscall_raw;
	gadget_bytes size_raw;
	gadget_duration latency_raw;
	gadget_uid owner_raw;
	gadget_gid owner_group_raw;
	enum ev_type type_raw;
	enum open_flags_set flags_raw;
	struct gadget_l3endpoint_t local;
	struct gadget_l4endpoint_t remote;
	gadget_kernel_stack kstack_raw;
	struct gadget_user_stack ustack_raw;
	gadget_netns_id netns_id;
	gadget_counter__u64 calls;
	bool ok;
	char name[16];
};

const volatile pid_t target_tgid = 0;
GADGET_PARAM(target_tgid);

GADGET_TRACER_MAP(events, 256 * 1024);
GADGET_TRACER(fields, events, event);

SEC("tracepoint/syscalls/sys_enter_getpgid")
int ig_fields_e(struct trace_event_raw_sys_enter *ctx)
{
	struct event *e;

	if (target_tgid && (bpf_get_current_pid_tgid() >> 32) != (__u32)target_tgid)
		return 0;
	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate(&e->proc);
	e->error_raw = 2;
	e->sig_raw = 10;
	e->syscall_raw = ctx->id;
	e->size_raw = 10240;
	e->latency_raw = 1500000;
	e->owner_raw = 0;
	e->owner_group_raw = 4242;
	e->type_raw = EV_CLOSE;
	e->flags_raw = FLAG_WR | FLAG_CREAT | FLAG_TRUNC;
	e->local.addr_raw.v4 = bpf_htonl(0x7f000001);
	e->local.version = 4;
	e->remote.addr_raw.v6[15] = 1;
	e->remote.port = 53;
	e->remote.proto_raw = 17;
	e->remote.version = 6;
	e->kstack_raw = gadget_get_kernel_stack(ctx);
	gadget_get_user_stack(ctx, &e->ustack_raw);
	e->netns_id = gadget_get_current_netns_id();
	e->calls = 7;
	e->ok = true;
	__builtin_memcpy(e->name, "ig-style", 9);
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
