// SPDX-License-Identifier: Apache-2.0
/*
 * Like plain_libbpf, but the ring buffer map names its record type with
 * __type(value, struct event): the kernel refuses a value type on ring
 * buffers, so a loader must take the type as a hint and drop it from the
 * map it creates. No typed global keeps struct event in BTF here: the map
 * definition does.
 *
 * Each getppid(2) call emits struct event { pid (tgid), comm, value =
 * 0x1122334455667788 }.
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
	__type(value, struct event);
} rb SEC(".maps");

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
