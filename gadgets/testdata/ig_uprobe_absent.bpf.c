// SPDX-License-Identifier: Apache-2.0
/*
 * Uprobes on a library and on a symbol this host lacks, beside a
 * tracepoint: as Inspektor Gadget does, sluice skips the absent targets
 * with a log line and runs the rest (one event per getppid(2)).
 */
#include <sluice/gadget.h>

struct event {
	gadget_pid pid;
};

GADGET_TRACER_MAP(events, 4096);
GADGET_TRACER(calls, events, event);

SEC("uprobe/libsluice_absent:sluice_nothing")
int ig_absent_library(void *ctx)
{
	return 0;
}

SEC("uprobe/libc:sluice_no_such_symbol")
int ig_absent_symbol(void *ctx)
{
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int ig_present(void *ctx)
{
	struct event e = {.pid = bpf_get_current_pid_tgid() >> 32};

	gadget_output_buf(ctx, &events, &e, sizeof(e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
