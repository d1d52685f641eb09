// tag.c: re-emits every event with one more key, "stage_version", set to
// TAG_VERSION (a compile-time constant: tag_v1.wasm and tag_v2.wasm are two
// versions of one stage for the hot-swap tests), "copies" times (param,
// default 1: flat-map).
//
// Built with TAG_PATCHABLE (tag_patchable.wasm), the version is the byte
// that follows the marker "sluice-tag-version:" in the module's data: tests
// make as many versions as they need by patching that byte in the .wasm
// (wasmstages.PatchTagVersion in the tests), without a compiler.
#include "guest.h"

#ifndef TAG_VERSION
#define TAG_VERSION 1
#endif

#ifdef TAG_PATCHABLE
// volatile: the compiler must read the byte from memory, where the data
// segment put it, instead of folding the initial value into the code.
static volatile const uint8_t tag_version[] = "sluice-tag-version:\x01";
#define VERSION_BYTE (tag_version[sizeof tag_version - 2])
#else
#define VERSION_BYTE TAG_VERSION
#endif

static uint32_t copies = 1;
static uint8_t *scratch;
static size_t scratch_cap;

EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t n) {
	const uint8_t *v;
	size_t vn;
	if (mp_lookup(p, (size_t)n, "copies", &v, &vn)) {
		int64_t c = mp_uint(v, vn);
		if (c < 0 || c > 16) {
			set_error_str("param copies must be an integer from 0 to 16");
			return 1;
		}
		copies = (uint32_t)c;
	}
	return 0;
}

// retag writes ev with "stage_version" appended into scratch; 0 on error.
static uint32_t retag(const uint8_t *ev, uint32_t len) {
	uint32_t count;
	int64_t h = mp_container(ev, len, 1, &count);
	if (h < 0) return 0;
	size_t need = 5 + (len - (size_t)h) + 16;
	if (need > scratch_cap) {
		scratch = realloc(scratch, need);
		if (!scratch) __builtin_trap();
		scratch_cap = need;
	}
	uint8_t *o = scratch;
	count++;
	*o++ = 0xdf; // map32: room for one more key whatever the input's header was
	o[0] = (uint8_t)(count >> 24), o[1] = (uint8_t)(count >> 16), o[2] = (uint8_t)(count >> 8), o[3] = (uint8_t)count;
	o += 4;
	memcpy(o, ev + h, len - (size_t)h);
	o += len - (size_t)h;
	static const char key[] = "stage_version";
	*o++ = 0xa0 | (sizeof key - 1);
	memcpy(o, key, sizeof key - 1);
	o += sizeof key - 1;
	*o++ = VERSION_BYTE;
	return (uint32_t)(o - scratch);
}

EXPORT("sluice_process") int64_t sluice_process(const uint8_t *p, int32_t n) {
	uint32_t count = rd32(p), off = 4;
	out_begin();
	for (uint32_t i = 0; i < count; i++) {
		uint32_t len = rd32(p + off);
		off += 4;
		uint32_t m = retag(p + off, len);
		if (!m) {
			set_error_str("event is not a map");
			return -1;
		}
		for (uint32_t c = 0; c < copies; c++) out_emit(i, scratch, m);
		off += len;
	}
	(void)n;
	return out_end();
}
