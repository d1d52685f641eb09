// flatmap.c: derives several events from each input, the ways a stage can:
// the input KEPT "copies" times (default 2), then an EMIT derived from it
// that adds "copy" = copies, so that a host which named derived events by
// their input alone would give them all one identity. On each tick it emits
// "tick_events" (default 0) events derived from no input.
#include "guest.h"

static uint32_t copies = 2, tick_events;

static uint32_t param_uint(const uint8_t *p, int32_t n, const char *key, uint32_t def) {
	const uint8_t *v;
	size_t vn;
	if (!mp_lookup(p, (size_t)n, key, &v, &vn)) return def;
	int64_t u = mp_uint(v, vn);
	return u >= 0 && u <= 100 ? (uint32_t)u : def;
}

EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t n) {
	copies = param_uint(p, n, "copies", 2);
	tick_events = param_uint(p, n, "tick_events", 0);
	return 0;
}

// with_copy re-encodes the event at ev (a msgpack map) with one more key,
// "copy" = copies, into buf; it returns the length, or 0 when the map's
// header is not one it handles.
static uint32_t with_copy(const uint8_t *ev, uint32_t len, uint8_t *buf) {
	uint32_t keys, hdr;
	if ((ev[0] & 0xf0) == 0x80) keys = ev[0] & 0x0f, hdr = 1;
	else if (ev[0] == 0xde && len >= 3) keys = (uint32_t)ev[1] << 8 | ev[2], hdr = 3;
	else return 0;
	keys++;
	uint32_t o = 0;
	buf[o++] = 0xde, buf[o++] = (uint8_t)(keys >> 8), buf[o++] = (uint8_t)keys;
	memcpy(buf + o, ev + hdr, len - hdr);
	o += len - hdr;
	buf[o++] = 0xa4, memcpy(buf + o, "copy", 4), o += 4;
	buf[o++] = (uint8_t)(copies & 0x7f);
	return o;
}

EXPORT("sluice_process") int64_t sluice_process(const uint8_t *p, int32_t n) {
	uint32_t count = rd32(p), off = 4;
	out_begin();
	for (uint32_t i = 0; i < count; i++) {
		uint32_t len = rd32(p + off);
		const uint8_t *ev = p + off + 4;
		off += 4 + len;
		for (uint32_t c = 0; c < copies; c++) out_keep(i);
		uint8_t *buf = malloc(len + 16);
		uint32_t m = with_copy(ev, len, buf);
		if (m) out_emit(i, buf, m);
		free(buf);
	}
	(void)n;
	return out_end();
}

EXPORT("sluice_tick") int64_t sluice_tick(int64_t now_ns) {
	out_begin();
	for (uint32_t k = 0; k < tick_events; k++) {
		// {"type": "tick", "k": k}
		uint8_t ev[16] = {0x82, 0xa4, 't', 'y', 'p', 'e', 0xa4, 't', 'i', 'c', 'k', 0xa1, 'k', (uint8_t)(k & 0x7f)};
		out_emit(NO_INPUT, ev, 14);
	}
	(void)now_ns;
	return out_end();
}
