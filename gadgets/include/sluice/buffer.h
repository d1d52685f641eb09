/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Output helpers for tracer gadgets: a BPF ring buffer plus a per-CPU
 * counter of records the kernel could not store.
 *
 * Call the helpers with the map's address, as Inspektor Gadget's helpers
 * are called: gadget_reserve_buf(&events, sizeof(*e)). They are macros so
 * that they can find `events_lost_samples` by token pasting; pass `&name`
 * literally (not `(&name)` or a pointer variable).
 *
 * Wakeups. Waking the reader is the main kernel-side cost of a record
 * (measured: it roughly halves ring buffer throughput). So by default a
 * record wakes the reader only once the ring holds GADGET_WAKEUP_BYTES of
 * unread data (default 64 KiB); below that the record is submitted with
 * BPF_RB_NO_WAKEUP and user space finds it on its next poll, which runs on
 * a short timer (a few ms). A gadget that wants the kernel's per-record
 * adaptive wakeup defines GADGET_WAKEUP_BYTES to 0 before including this
 * header. Readers must therefore poll with a deadline rather than wait for
 * an epoll wakeup alone.
 *
 * Lost samples. A failed reserve or output (ring full) increments
 * `<map>_lost_samples` (one __u64 per CPU; user space sums them), so no
 * record is lost silently.
 *
 * sluice targets kernels with BPF ring buffers (5.8+); there is no perf
 * buffer fallback.
 */
#ifndef __SLUICE_BUFFER_H
#define __SLUICE_BUFFER_H

#include <bpf/bpf_helpers.h>

#ifndef GADGET_WAKEUP_BYTES
#define GADGET_WAKEUP_BYTES (64 * 1024)
#endif

/*
 * GADGET_TRACER_MAP(name, size) declares ring buffer `name` of `size` bytes
 * (a power of two, multiple of the page size; user space may resize it) and
 * its lost-samples counter `name_lost_samples`. The gadget_map_tracer_ marker
 * is IG's; sluice does not read it (GADGET_TRACER names the map). */
#define GADGET_TRACER_MAP(name, size)                          \
	struct {                                               \
		__uint(type, BPF_MAP_TYPE_RINGBUF);            \
		__uint(max_entries, size);                     \
	} name SEC(".maps");                                   \
	struct {                                               \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);       \
		__uint(max_entries, 1);                        \
		__type(key, __u32);                            \
		__type(value, __u64);                          \
	} name##_lost_samples SEC(".maps");                    \
	const void *gadget_map_tracer_##name __attribute__((unused));

static __always_inline void __sluice_count_lost(void *lost)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(lost, &zero);

	/* Faultable syscall tracepoints run preemptibly: two programs may
	 * interleave on one CPU, so even a per-CPU counter needs an atomic. */
	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline __u64 __sluice_wakeup_flags(void *map)
{
	if (GADGET_WAKEUP_BYTES == 0)
		return 0;
	if (bpf_ringbuf_query(map, BPF_RB_AVAIL_DATA) >= GADGET_WAKEUP_BYTES)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline void *__sluice_reserve(void *map, void *lost, __u64 size)
{
	void *p = bpf_ringbuf_reserve(map, size, 0);

	if (!p)
		__sluice_count_lost(lost);
	return p;
}

static __always_inline long __sluice_output(void *map, void *lost, void *data,
					    __u64 size)
{
	long err = bpf_ringbuf_output(map, data, size, __sluice_wakeup_flags(map));

	if (err)
		__sluice_count_lost(lost);
	return err;
}

/* gadget_reserve_buf(&map, size) returns a record to fill, or NULL (counted). */
#define gadget_reserve_buf(map, size) \
	__sluice_reserve(map, map##_lost_samples, size)

/* gadget_submit_buf(ctx, &map, buf, size) publishes a reserved record. */
#define gadget_submit_buf(ctx, map, buf, size) \
	(bpf_ringbuf_submit(buf, __sluice_wakeup_flags(map)), 0L)

/* gadget_discard_buf(buf) drops a reserved record without counting it. */
#define gadget_discard_buf(buf) bpf_ringbuf_discard(buf, 0)

/*
 * gadget_output_buf(ctx, &map, data, size) copies `size` bytes of `data`
 * into the ring: the way to emit a record shorter than its struct (a
 * variable-length tail). Returns 0 or a negative errno (counted as lost).
 */
#define gadget_output_buf(ctx, map, data, size) \
	__sluice_output(map, map##_lost_samples, data, size)

#endif /* __SLUICE_BUFFER_H */
