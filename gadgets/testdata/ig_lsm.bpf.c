// SPDX-License-Identifier: Apache-2.0
/*
 * An LSM program (lsm/file_open) that allows everything, for the test of
 * how sluice reports a kernel that refuses BPF LSM programs.
 */
#include <sluice/gadget.h>

struct event {
	gadget_pid pid;
};

GADGET_TRACER_MAP(events, 4096);
GADGET_TRACER(opens, events, event);

SEC("lsm/file_open")
int ig_lsm_open(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
