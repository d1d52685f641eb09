// SPDX-License-Identifier: Apache-2.0
/* A kprobe, for kernels without kprobes to refuse clearly (kprobe.wasm). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("kprobe/do_nanosleep")
int probe_nanosleep(void *ctx)
{
	return 0;
}
