// SPDX-License-Identifier: Apache-2.0
/*
 * An Inspektor Gadget-style histogram gadget, after IG's profile_blockio:
 * block request latency per device as a log2 histogram in microseconds
 * (IG's gadget_histogram_slot__u32), and request sizes in 4 KiB pages as a
 * linear histogram (sluice's gadget_histogram_linear_slot__u32). Both maps
 * are drained every interval (GADGET_MAPITER), so each snapshot holds the
 * requests that completed since the previous one.
 */
#include <sluice/gadget.h>

#define LATENCY_SLOTS 27
#define SIZE_SLOTS 16

struct hist_key {
	__u32 dev;
};

struct latency_hist {
	gadget_histogram_slot__u32 latency[LATENCY_SLOTS];
};

struct size_hist {
	gadget_histogram_linear_slot__u32 pages[SIZE_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct hist_key);
	__type(value, struct latency_hist);
} latencies SEC(".maps");
GADGET_MAPITER(blockio, latencies);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct hist_key);
	__type(value, struct size_hist);
} sizes SEC(".maps");
GADGET_MAPITER(blockio_sizes, sizes);

struct rq_key {
	__u32 dev;
	__u64 sector;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, struct rq_key);
	__type(value, __u64); /* issue time */
} start SEC(".maps");

static const struct latency_hist zero_latency;
static const struct size_hist zero_size;

static __always_inline __u32 log2l(__u64 v)
{
	__u32 r = 0;

	for (int i = 0; i < 63 && v > 1; i++) {
		v >>= 1;
		r++;
	}
	return r;
}

SEC("tracepoint/block/block_rq_issue")
int ig_hist_issue(struct trace_event_raw_block_rq *ctx)
{
	struct rq_key key = {.dev = ctx->dev, .sector = ctx->sector};
	__u64 now = bpf_ktime_get_ns();
	struct hist_key hk = {.dev = ctx->dev};
	struct size_hist *sh;
	__u32 pages = ctx->bytes / 4096;

	bpf_map_update_elem(&start, &key, &now, BPF_ANY);
	sh = bpf_map_lookup_elem(&sizes, &hk);
	if (!sh) {
		bpf_map_update_elem(&sizes, &hk, &zero_size, BPF_NOEXIST);
		sh = bpf_map_lookup_elem(&sizes, &hk);
		if (!sh)
			return 0;
	}
	if (pages >= SIZE_SLOTS)
		pages = SIZE_SLOTS - 1;
	__sync_fetch_and_add(&sh->pages[pages], 1);
	return 0;
}

SEC("tracepoint/block/block_rq_complete")
int ig_hist_complete(struct trace_event_raw_block_rq_completion *ctx)
{
	struct rq_key key = {.dev = ctx->dev, .sector = ctx->sector};
	struct hist_key hk = {.dev = ctx->dev};
	struct latency_hist *h;
	__u64 *ts, slot;

	ts = bpf_map_lookup_elem(&start, &key);
	if (!ts)
		return 0;
	slot = log2l((bpf_ktime_get_ns() - *ts) / 1000);
	bpf_map_delete_elem(&start, &key);
	h = bpf_map_lookup_elem(&latencies, &hk);
	if (!h) {
		bpf_map_update_elem(&latencies, &hk, &zero_latency, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&latencies, &hk);
		if (!h)
			return 0;
	}
	if (slot >= LATENCY_SLOTS)
		slot = LATENCY_SLOTS - 1;
	__sync_fetch_and_add(&h->latency[slot], 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
