// SPDX-License-Identifier: Apache-2.0
/*
 * profile_blockio: block I/O latency, as a log2 histogram in microseconds
 * per device (slot i counts requests that took [2^i, 2^(i+1)) µs), in a map
 * user space drains every interval (GADGET_MAPITER): each snapshot is the
 * requests that completed since the last.
 *
 * Key (struct hist_key):
 *   dev       __u32                            the device (major << 20 |
 *                                              minor)
 * Value (struct hist):
 *   latency   gadget_histogram_slot__u32[27]   requests per latency slot
 *
 * Params: writes_only, reads_only (bool, default false) keep one
 * direction.
 *
 * Tracepoints: block/block_rq_issue and block/block_rq_complete, matched
 * by device and sector. The histogram slot type is Inspektor Gadget's, so
 * the snapshot is drawn as a histogram.
 */
#include <sluice/gadget.h>

#define SLOTS 27

/* Inspektor Gadget's log2 histogram slot; a typedef repeated identically
 * elsewhere is valid C11. */
typedef __u32 gadget_histogram_slot__u32;

struct hist_key {
	__u32 dev;
};

struct hist {
	gadget_histogram_slot__u32 latency[SLOTS];
};

const volatile bool writes_only = false;
GADGET_PARAM(writes_only);
const volatile bool reads_only = false;
GADGET_PARAM(reads_only);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct hist_key);
	__type(value, struct hist);
} latencies SEC(".maps");
GADGET_MAPITER(blockio, latencies);

/* Explicit padding, zeroed: map keys are compared byte for byte, and
 * uninitialised padding made issue and completion keys differ. */
struct rq_key {
	__u32 dev;
	__u32 pad;
	__u64 sector;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, struct rq_key);
	__type(value, __u64); /* issue time */
} start SEC(".maps");

/* Contexts of block/block_rq_issue and block/block_rq_complete. */
struct trace_event_raw_block_rq___sluice {
	struct trace_entry ent;
	__u32 dev;
	__u64 sector;
	unsigned int nr_sector;
	unsigned int bytes;
	unsigned short ioprio;
	char rwbs[10];
} __attribute__((preserve_access_index));

struct trace_event_raw_block_rq_completion___sluice {
	struct trace_entry ent;
	__u32 dev;
	__u64 sector;
} __attribute__((preserve_access_index));

static const struct hist zero_hist;

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
int blockio_issue(struct trace_event_raw_block_rq___sluice *ctx)
{
	struct rq_key key = { .dev = ctx->dev, .pad = 0, .sector = ctx->sector };
	__u64 now = bpf_ktime_get_ns();
	char op;

	if (reads_only || writes_only) {
		bpf_probe_read_kernel(&op, 1, ctx->rwbs);
		if (reads_only && op != 'R')
			return 0;
		if (writes_only && op != 'W')
			return 0;
	}
	bpf_map_update_elem(&start, &key, &now, BPF_ANY);
	return 0;
}

SEC("tracepoint/block/block_rq_complete")
int blockio_complete(struct trace_event_raw_block_rq_completion___sluice *ctx)
{
	struct rq_key key = { .dev = ctx->dev, .pad = 0, .sector = ctx->sector };
	struct hist_key hk = { .dev = ctx->dev };
	struct hist *h;
	__u64 *ts, slot;

	ts = bpf_map_lookup_elem(&start, &key);
	if (!ts)
		return 0;
	slot = log2l((bpf_ktime_get_ns() - *ts) / 1000);
	bpf_map_delete_elem(&start, &key);
	h = bpf_map_lookup_elem(&latencies, &hk);
	if (!h) {
		bpf_map_update_elem(&latencies, &hk, &zero_hist, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&latencies, &hk);
		if (!h)
			return 0;
	}
	if (slot >= SLOTS)
		slot = SLOTS - 1;
	__sync_fetch_and_add(&h->latency[slot], 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
