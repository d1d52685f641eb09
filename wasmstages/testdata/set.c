// set.c: a stage of ABI version 2 that answers every input with a SET of
// the msgpack map in its param "fields" (what the SDKs send for an
// enrichment), and, with the param "repeat", SETs input 0 that many times
// more (a result of a few bytes that asks the host for many copies of an
// event).
#define TEST_ABI_VERSION 2
#include "guest.h"

static uint8_t *fields;
static uint32_t fields_len;
static uint64_t repeat;

EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t n) {
	const uint8_t *v;
	size_t vn;
	uint32_t count;
	if (!mp_lookup(p, (size_t)n, "fields", &v, &vn) || mp_container(v, vn, 1, &count) < 0) {
		set_error_str("param fields (a map) is required");
		return 1;
	}
	fields = malloc(vn);
	memcpy(fields, v, vn);
	fields_len = (uint32_t)vn;
	if (mp_lookup(p, (size_t)n, "repeat", &v, &vn)) {
		int64_t r = mp_uint(v, vn);
		if (r < 0) {
			set_error_str("param repeat: want a count");
			return 1;
		}
		repeat = (uint64_t)r;
	}
	return 0;
}

EXPORT("sluice_process") int64_t sluice_process(const uint8_t *p, int32_t n) {
	(void)n;
	uint32_t count = rd32(p);
	out_begin();
	for (uint32_t i = 0; i < count; i++) out_set(i, fields, fields_len);
	for (uint64_t i = 0; i < repeat && count > 0; i++) out_set(0, fields, fields_len);
	return out_end();
}
