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

// skip_scalar returns the size of the value at p when it is a scalar or a
// string (what events mostly hold), without a call; 0 for anything else.
static inline __attribute__((always_inline)) size_t skip_scalar(const uint8_t *p, size_t n) {
	uint8_t c = p[0];
	size_t k = 0;
	if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) k = 1;
	else if ((c & 0xe0) == 0xa0) k = 1 + (c & 0x1f);
	else if (c == 0xd9 && n >= 2) k = 2 + p[1];
	else if (c == 0xcc || c == 0xd0) k = 2;
	else if (c == 0xcd || c == 0xd1) k = 3;
	else if (c == 0xce || c == 0xd2 || c == 0xca) k = 5;
	else if (c == 0xcf || c == 0xd3 || c == 0xcb) k = 9;
	return k <= n ? k : 0;
}

// find_comm returns the comm string of an event, scanning its keys with
// the common cases inline; 0 when it has none.
static int find_comm(const uint8_t *p, size_t n, const uint8_t **s, uint32_t *sl) {
	uint32_t count;
	int64_t h = mp_container(p, n, 1, &count);
	if (h < 0) return 0;
	size_t off = (size_t)h;
	for (uint32_t i = 0; i < count && off < n; i++) {
		uint8_t c = p[off];
		if ((c & 0xe0) != 0xa0) return 0; // a key that is not a short string: not an event map
		size_t kl = c & 0x1f;
		const uint8_t *k = p + off + 1;
		off += 1 + kl;
		if (off >= n) return 0;
		if (kl == 4 && k[0] == 'c' && k[1] == 'o' && k[2] == 'm' && k[3] == 'm')
			return mp_str(p + off, n - off, s, sl) >= 0;
		size_t v = skip_scalar(p + off, n - off);
		if (!v) {
			int64_t w = mp_skip(p + off, n - off, 0);
			if (w < 0) return 0;
			v = (size_t)w;
		}
		off += v;
	}
	return 0;
}

static int dropped(const uint8_t *ev, uint32_t len) {
	const uint8_t *s;
	uint32_t sl;
	if (!find_comm(ev, len, &s, &sl)) return 0;
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
