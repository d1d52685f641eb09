// SPDX-License-Identifier: Apache-2.0
/*
 * A plain libbpf-style program: no gadget header, no markers, and a ring
 * buffer map without a value type. It stands for third-party objects whose
 * event type sluice must be told (event_type = "event") or must infer.
 *
 * Each getppid(2) call emits struct event { pid (tgid), comm, value =
 * 0x1122334455667788 }, so tests trigger it deterministically.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct event {
	__u32 pid;
	char comm[16];
	__u64 value;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} rb SEC(".maps");

/* clang puts only the types of globals and function signatures in BTF; a
 * typed pointer is the usual libbpf way to keep the record type there. */
const struct event *unused_event __attribute__((unused));

SEC("tracepoint/syscalls/sys_enter_getppid")
int handle_getppid(void *ctx)
{
	struct event *e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);

	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->value = 0x1122334455667788ULL;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
