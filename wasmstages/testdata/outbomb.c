// outbomb.c: answers every batch with a flood of output, sized by its
// params: "events" EMITs of a map {"pad": <string of "bytes" bytes>}, then
// "keeps" KEEPs of the first input. It is what a hostile or broken stage
// does to make the host hold far more than the guest's memory limit.
#include "guest.h"

static uint32_t g_events, g_bytes, g_keeps;
static uint8_t *g_payload;
static uint32_t g_payload_len;

static uint32_t param_u32(const uint8_t *p, size_t n, const char *key) {
	const uint8_t *v;
	size_t vn;
	if (!mp_lookup(p, n, key, &v, &vn)) return 0;
	int64_t x = mp_uint(v, vn);
	return x < 0 ? 0 : (uint32_t)x;
}

EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t n) {
	g_events = param_u32(p, (size_t)n, "events");
	g_bytes = param_u32(p, (size_t)n, "bytes");
	g_keeps = param_u32(p, (size_t)n, "keeps");
	// {"pad": str32 of g_bytes}: fixmap(1), fixstr "pad", 0xdb + u32 length.
	g_payload_len = 1 + 4 + 5 + g_bytes;
	g_payload = malloc(g_payload_len);
	if (!g_payload) return 1;
	uint8_t *q = g_payload;
	*q++ = 0x81;
	*q++ = 0xa3, *q++ = 'p', *q++ = 'a', *q++ = 'd';
	*q++ = 0xdb;
	*q++ = (uint8_t)(g_bytes >> 24), *q++ = (uint8_t)(g_bytes >> 16), *q++ = (uint8_t)(g_bytes >> 8), *q++ = (uint8_t)g_bytes;
	memset(q, 'x', g_bytes);
	return 0;
}

EXPORT("sluice_process") int64_t sluice_process(const uint8_t *p, int32_t n) {
	(void)n;
	out_begin();
	for (uint32_t i = 0; i < g_events; i++) out_emit(NO_INPUT, g_payload, g_payload_len);
	if (rd32(p) > 0) {
		for (uint32_t i = 0; i < g_keeps; i++) out_keep(0);
	}
	return out_end();
}
