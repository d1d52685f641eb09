// filter.c: a well-behaved drop-comm filter against the raw ABI. It drops
// events whose "comm" is one of the strings in the param "comms", keeps the
// rest unchanged, counts what it dropped (guest counter "dropped"), and, with
// the param "summary" set, emits on each tick a summary event of what it
// dropped since the previous tick.
#include "guest.h"

#define MAX_COMMS 64
#define MAX_COMM_LEN 64

static char comms[MAX_COMMS][MAX_COMM_LEN];
static uint32_t comm_lens[MAX_COMMS];
static int ncomms;
static int summary;
static uint64_t dropped_since_tick;

EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t n) {
	const uint8_t *v;
	size_t vn;
	if (mp_lookup(p, (size_t)n, "comms", &v, &vn)) {
		uint32_t count;
		int64_t off = mp_container(v, vn, 0, &count);
		if (off < 0) {
			set_error_str("param comms must be a list of strings");
			return 1;
		}
		for (uint32_t i = 0; i < count; i++) {
			const uint8_t *s;
			uint32_t sl;
			int64_t m = mp_str(v + off, vn - (size_t)off, &s, &sl);
			if (m < 0) {
				set_error_str("param comms must be a list of strings");
				return 1;
			}
			if (ncomms == MAX_COMMS || sl >= MAX_COMM_LEN) {
				set_error_str("param comms: too many names, or a name too long");
				return 1;
			}
			memcpy(comms[ncomms], s, sl);
			comm_lens[ncomms++] = sl;
			off += m;
		}
	}
	if (mp_lookup(p, (size_t)n, "summary", &v, &vn)) summary = v[0] == 0xc3;
	log_str(1, "filter ready");
	return 0;
}

static int dropped(const uint8_t *ev, uint32_t len) {
	const uint8_t *v, *s;
	size_t vn;
	uint32_t sl;
	if (!mp_lookup(ev, len, "comm", &v, &vn) || mp_str(v, vn, &s, &sl) < 0) return 0;
	for (int i = 0; i < ncomms; i++)
		if (comm_lens[i] == sl && memcmp(comms[i], s, sl) == 0) return 1;
	return 0;
}

EXPORT("sluice_process") int64_t sluice_process(const uint8_t *p, int32_t n) {
	uint32_t count = rd32(p), off = 4, drops = 0;
	out_begin();
	for (uint32_t i = 0; i < count; i++) {
		uint32_t len = rd32(p + off);
		off += 4;
		if (dropped(p + off, len))
			drops++;
		else
			out_keep(i);
		off += len;
	}
	if (drops) {
		counter_add_str("dropped", drops);
		dropped_since_tick += drops;
	}
	(void)n;
	return out_end();
}

EXPORT("sluice_tick") int64_t sluice_tick(int64_t now_ns) {
	out_begin();
	if (summary && dropped_since_tick) {
		// {"type": "summary", "dropped": N}
		uint8_t ev[32] = {0x82, 0xa4, 't', 'y', 'p', 'e', 0xa7, 's', 'u', 'm', 'm', 'a', 'r', 'y',
		                  0xa7, 'd', 'r', 'o', 'p', 'p', 'e', 'd', 0xcf};
		uint64_t d = dropped_since_tick;
		for (int i = 0; i < 8; i++) ev[23 + i] = (uint8_t)(d >> (56 - 8 * i));
		out_emit(NO_INPUT, ev, 31);
		dropped_since_tick = 0;
	}
	(void)now_ns;
	return out_end();
}

EXPORT("sluice_close") void sluice_close(void) { log_str(1, "filter closing"); }
