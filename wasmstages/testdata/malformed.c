// malformed.c: answers sluice_process with a result that breaks the ABI in
// the way the param "mode" names:
//   truncated  the count promises more entries than the result holds
//   index      a KEEP names an input that does not exist
//   op         an entry has an unknown op
//   notmap     an EMIT carries a msgpack array, not a map
//   badmap     an EMIT carries a map that is cut short
//   emitlen    an EMIT's length runs past the end of the result
//   trailing   bytes follow the last entry
//   outside    the result pointer lies outside the guest's memory
//   set        a SET, which this version 1 module may not use
#include "guest.h"

static char mode[16];

EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t n) {
	const uint8_t *v, *s;
	size_t vn;
	uint32_t sl;
	if (!mp_lookup(p, (size_t)n, "mode", &v, &vn) || mp_str(v, vn, &s, &sl) < 0 || sl >= sizeof mode) {
		set_error_str("param mode is required");
		return 1;
	}
	memcpy(mode, s, sl);
	return 0;
}

static int is(const char *m) { return strcmp(mode, m) == 0; }

EXPORT("sluice_process") int64_t sluice_process(const uint8_t *p, int32_t n) {
	uint32_t count = rd32(p);
	out_begin();
	if (is("index")) {
		out_keep(count + 5);
	} else if (is("op")) {
		out_keep(0);
		g_out[g_out_len - 5] = 7;
	} else if (is("notmap")) {
		static const uint8_t arr[] = {0x92, 0x01, 0x02};
		out_emit(0, arr, sizeof arr);
	} else if (is("badmap")) {
		static const uint8_t m[] = {0x82, 0xa1, 'a', 0x01, 0xa1};
		out_emit(0, m, sizeof m);
	} else if (is("set")) {
		static const uint8_t m[] = {0x81, 0xa1, 'a', 0x01};
		out_set(0, m, sizeof m);
	} else if (is("outside")) {
		return (int64_t)0x7ffffff0 << 32 | 64;
	} else {
		for (uint32_t i = 0; i < count; i++) out_keep(i);
	}
	int64_t r = out_end();
	if (is("truncated")) {
		wr32(g_out, count + 1);
	} else if (is("emitlen")) {
		static const uint8_t m[] = {0x80};
		out_emit(0, m, sizeof m);
		r = out_end();
		wr32(g_out + g_out_len - 5, 1000);
	} else if (is("trailing")) {
		out_reserve(3);
		g_out[g_out_len++] = 0xff, g_out[g_out_len++] = 0xff, g_out[g_out_len++] = 0xff;
		r = (r & ~(int64_t)0xffffffff) | (int64_t)g_out_len;
	}
	(void)n;
	return r;
}
