// SPDX-License-Identifier: Apache-2.0
/*
 * Programs whose attach points no kernel has, for `sluice config validate`
 * (agent/testdata/validate): it must refuse the gadget before the agent
 * would. The tracepoint and the tp_btf program are required; the raw_tp
 * one is optional (the agent would run without it); the xdp program is of
 * a kind sluice does not attach.
 */
#include <sluice/gadget.h>

struct event {
	gadget_pid pid;
};

GADGET_TRACER_MAP(events, 4096);
GADGET_TRACER(absent, events, event);

static __always_inline int emit(void *ctx)
{
	struct event e = {.pid = bpf_get_current_pid_tgid() >> 32};

	gadget_output_buf(ctx, &events, &e, sizeof(e));
	return 0;
}

SEC("tracepoint/sluice_test/absent_event")
int absent_tracepoint(void *ctx)
{
	return emit(ctx);
}

SEC("tp_btf/sluice_absent_btf")
int absent_tp_btf(void *ctx)
{
	return emit(ctx);
}

SEC("raw_tp/sluice_absent_raw")
int absent_raw_tp(void *ctx)
{
	return emit(ctx);
}
GADGET_OPTIONAL(absent_raw_tp);

SEC("xdp")
int unsupported_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
