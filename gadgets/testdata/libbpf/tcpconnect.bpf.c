// SPDX-License-Identifier: Apache-2.0
/*
 * tcpconnect with libbpf-tools' event layout (addresses in anonymous
 * unions of an IPv4 and an IPv6 member, tagged by af), on the
 * sock/inet_sock_set_state tracepoint (libbpf-tools uses kprobes): one
 * event per active open, when a socket enters SYN_SENT. Only the union
 * member af names is written; the rest of the union is zero. The event
 * goes through a ring buffer.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "tcpconnect.h"

const volatile pid_t filter_pid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

SEC("tracepoint/sock/inet_sock_set_state")
int tcp_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct event *e;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	if (ctx->protocol != IPPROTO_TCP || ctx->newstate != TCP_SYN_SENT)
		return 0;
	if (filter_pid && pid != filter_pid)
		return 0;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->af = ctx->family;
	if (ctx->family == AF_INET) {
		bpf_probe_read_kernel(&e->saddr_v4, 4, ctx->saddr);
		bpf_probe_read_kernel(&e->daddr_v4, 4, ctx->daddr);
	} else {
		bpf_probe_read_kernel(e->saddr_v6, 16, ctx->saddr_v6);
		bpf_probe_read_kernel(e->daddr_v6, 16, ctx->daddr_v6);
	}
	e->pid = pid;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->ts_us = bpf_ktime_get_ns() / 1000;
	e->dport = ctx->dport;
	bpf_get_current_comm(e->task, sizeof(e->task));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
