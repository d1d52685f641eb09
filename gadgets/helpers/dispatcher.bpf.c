// SPDX-License-Identifier: Apache-2.0
/*
 * sluice's socket filter dispatcher: attached to a gadget's packet socket
 * in place of the gadget's program, it writes the socket's network
 * namespace (netns_inum, set before load) to skb->cb[0], where Inspektor
 * Gadget's networking helpers read it, and tail-calls the gadget's program
 * (gadget_prog[0]). One instance per network namespace.
 */
#include <sluice/gadget.h>

const volatile __u32 netns_inum = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} gadget_prog SEC(".maps");

SEC("socket")
int sluice_dispatch(struct __sk_buff *skb)
{
	skb->cb[0] = netns_inum;
	bpf_tail_call(skb, &gadget_prog, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
