// guest.h: the raw stage ABI (docs/stage-abi.md; version 1 unless a guest
// defines TEST_ABI_VERSION) for the test guests in
// this directory. It is deliberately not the C SDK (sdk/c): these guests
// test the host, so they speak the wire format directly, and some of them
// break it on purpose.
#ifndef SLUICE_TEST_GUEST_H
#define SLUICE_TEST_GUEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(name)))
#define IMPORT(name) __attribute__((import_module("sluice"), import_name(name)))

IMPORT("log") void sluice_log(int32_t level, const char *ptr, int32_t len);
IMPORT("set_error") void sluice_set_error(const char *ptr, int32_t len);
IMPORT("counter_add") void sluice_counter_add(const char *name, int32_t name_len, int64_t delta);
IMPORT("now") int64_t sluice_now(void);

enum { OP_KEEP = 1, OP_EMIT = 2, OP_SET = 3 };
#define NO_INPUT 0xFFFFFFFFu

static inline void log_str(int level, const char *s) { sluice_log(level, s, (int32_t)strlen(s)); }
static inline void set_error_str(const char *s) { sluice_set_error(s, (int32_t)strlen(s)); }
static inline void counter_add_str(const char *name, int64_t delta) {
	sluice_counter_add(name, (int32_t)strlen(name), delta);
}

// The host writes batches and params into the buffer sluice_alloc returns.
static uint8_t *g_in;
EXPORT("sluice_alloc") uint8_t *sluice_alloc(int32_t size) {
	free(g_in);
	g_in = malloc((size_t)size);
	return g_in;
}

EXPORT("sluice_abi_version") int32_t sluice_abi_version(void) {
#ifdef TEST_ABI_VERSION
	return TEST_ABI_VERSION;
#else
	return 1;
#endif
}

static inline uint32_t rd32(const uint8_t *p) {
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void wr32(uint8_t *p, uint32_t v) {
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

// ---- result builder ----
static uint8_t *g_out;
static size_t g_out_len, g_out_cap;
static uint32_t g_out_count;

static void out_reserve(size_t n) {
	if (g_out_len + n <= g_out_cap) return;
	size_t cap = g_out_cap ? g_out_cap : 1024;
	while (cap < g_out_len + n) cap *= 2;
	g_out = realloc(g_out, cap);
	if (!g_out) __builtin_trap();
	g_out_cap = cap;
}
static void out_begin(void) {
	g_out_len = 0, g_out_count = 0;
	out_reserve(4);
	g_out_len = 4;
}
static void out_keep(uint32_t index) {
	out_reserve(5);
	g_out[g_out_len] = OP_KEEP;
	wr32(g_out + g_out_len + 1, index);
	g_out_len += 5, g_out_count++;
}
static void out_entry(uint8_t op, uint32_t index, const uint8_t *ev, uint32_t len) {
	out_reserve(9 + len);
	g_out[g_out_len] = op;
	wr32(g_out + g_out_len + 1, index);
	wr32(g_out + g_out_len + 5, len);
	memcpy(g_out + g_out_len + 9, ev, len);
	g_out_len += 9 + len, g_out_count++;
}
static void out_emit(uint32_t index, const uint8_t *ev, uint32_t len) { out_entry(OP_EMIT, index, ev, len); }
// out_set is a SET (ABI version 2): input index with the fields of the
// msgpack map at fields set.
static void out_set(uint32_t index, const uint8_t *fields, uint32_t len) { out_entry(OP_SET, index, fields, len); }
static int64_t out_end(void) {
	wr32(g_out, g_out_count);
	return (int64_t)(uintptr_t)g_out << 32 | (int64_t)g_out_len;
}

// keep_all is the result of a pass-through stage: KEEP every event of the
// batch at p.
static int64_t keep_all(const uint8_t *p) {
	uint32_t count = rd32(p);
	out_begin();
	for (uint32_t i = 0; i < count; i++) out_keep(i);
	return out_end();
}

// ---- a minimal msgpack reader ----
// mp_skip returns the size of the value at p (at most n bytes), or -1.
static int64_t mp_skip(const uint8_t *p, size_t n, int depth);

static int64_t mp_skip_n(const uint8_t *p, size_t n, size_t off, uint64_t count, int depth) {
	for (uint64_t i = 0; i < count; i++) {
		if (off > n) return -1;
		int64_t k = mp_skip(p + off, n - off, depth + 1);
		if (k < 0) return -1;
		off += (size_t)k;
	}
	return (int64_t)off;
}

static uint64_t mp_be(const uint8_t *p, int w) {
	uint64_t v = 0;
	for (int i = 0; i < w; i++) v = v << 8 | p[i];
	return v;
}

static int64_t mp_skip(const uint8_t *p, size_t n, int depth) {
	if (n < 1 || depth > 64) return -1;
	uint8_t c = p[0];
	if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) return 1;
	if ((c & 0xe0) == 0xa0) return (c & 0x1f) + 1 <= (int64_t)n ? (c & 0x1f) + 1 : -1;
	if ((c & 0xf0) == 0x90) return mp_skip_n(p, n, 1, c & 0x0f, depth);
	if ((c & 0xf0) == 0x80) return mp_skip_n(p, n, 1, 2u * (c & 0x0f), depth);
	int w;
	switch (c) {
	case 0xcc: case 0xd0: return n >= 2 ? 2 : -1;
	case 0xcd: case 0xd1: return n >= 3 ? 3 : -1;
	case 0xca: case 0xce: case 0xd2: return n >= 5 ? 5 : -1;
	case 0xcb: case 0xcf: case 0xd3: return n >= 9 ? 9 : -1;
	case 0xd4: return n >= 3 ? 3 : -1;
	case 0xd5: return n >= 4 ? 4 : -1;
	case 0xd6: return n >= 6 ? 6 : -1;
	case 0xd7: return n >= 10 ? 10 : -1;
	case 0xd8: return n >= 18 ? 18 : -1;
	case 0xc4: case 0xd9: w = 1; goto sized;
	case 0xc5: case 0xda: w = 2; goto sized;
	case 0xc6: case 0xdb: w = 4; goto sized;
	case 0xc7: w = 1; goto ext;
	case 0xc8: w = 2; goto ext;
	case 0xc9: w = 4; goto ext;
	case 0xdc: w = 2; goto array;
	case 0xdd: w = 4; goto array;
	case 0xde: w = 2; goto map;
	case 0xdf: w = 4; goto map;
	}
	return -1;
sized:
	if (n < (size_t)1 + w) return -1;
	{
		uint64_t l = mp_be(p + 1, w);
		return 1 + w + l <= n ? (int64_t)(1 + w + l) : -1;
	}
ext:
	if (n < (size_t)2 + w) return -1;
	{
		uint64_t l = mp_be(p + 1, w);
		return 2 + w + l <= n ? (int64_t)(2 + w + l) : -1;
	}
array:
	if (n < (size_t)1 + w) return -1;
	return mp_skip_n(p, n, 1 + w, mp_be(p + 1, w), depth);
map:
	if (n < (size_t)1 + w) return -1;
	return mp_skip_n(p, n, 1 + w, 2 * mp_be(p + 1, w), depth);
}

// mp_str reads a string at p; it returns the bytes consumed or -1.
static int64_t mp_str(const uint8_t *p, size_t n, const uint8_t **s, uint32_t *slen) {
	if (n < 1) return -1;
	uint8_t c = p[0];
	int w;
	if ((c & 0xe0) == 0xa0) {
		*slen = c & 0x1f, *s = p + 1;
		return 1 + *slen <= n ? 1 + *slen : -1;
	}
	switch (c) {
	case 0xd9: w = 1; break;
	case 0xda: w = 2; break;
	case 0xdb: w = 4; break;
	default: return -1;
	}
	if (n < (size_t)1 + w) return -1;
	*slen = (uint32_t)mp_be(p + 1, w), *s = p + 1 + w;
	return 1 + w + (uint64_t)*slen <= n ? (int64_t)(1 + w + *slen) : -1;
}

// mp_container reads a map or array header; it returns the header size or -1.
static int64_t mp_container(const uint8_t *p, size_t n, int map, uint32_t *count) {
	if (n < 1) return -1;
	uint8_t c = p[0];
	if (map && (c & 0xf0) == 0x80) return *count = c & 0x0f, 1;
	if (!map && (c & 0xf0) == 0x90) return *count = c & 0x0f, 1;
	if (c == (map ? 0xde : 0xdc) && n >= 3) return *count = (uint32_t)mp_be(p + 1, 2), 3;
	if (c == (map ? 0xdf : 0xdd) && n >= 5) return *count = (uint32_t)mp_be(p + 1, 4), 5;
	return -1;
}

// mp_lookup finds key in the map at p and points *val at its value.
static int mp_lookup(const uint8_t *p, size_t n, const char *key, const uint8_t **val, size_t *vn) {
	uint32_t count;
	int64_t off = mp_container(p, n, 1, &count);
	if (off < 0) return 0;
	size_t klen = strlen(key);
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *k;
		uint32_t kl;
		int64_t m = mp_str(p + off, n - (size_t)off, &k, &kl);
		if (m < 0) return 0;
		off += m;
		int64_t v = mp_skip(p + off, n - (size_t)off, 0);
		if (v < 0) return 0;
		if (kl == klen && memcmp(k, key, klen) == 0) {
			*val = p + off, *vn = (size_t)v;
			return 1;
		}
		off += v;
	}
	return 0;
}

// mp_uint reads a non-negative integer, or returns -1.
static int64_t mp_uint(const uint8_t *p, size_t n) {
	if (n < 1) return -1;
	uint8_t c = p[0];
	if (c <= 0x7f) return c;
	switch (c) {
	case 0xcc: case 0xd0: return n >= 2 ? (int64_t)mp_be(p + 1, 1) : -1;
	case 0xcd: case 0xd1: return n >= 3 ? (int64_t)mp_be(p + 1, 2) : -1;
	case 0xce: case 0xd2: return n >= 5 ? (int64_t)mp_be(p + 1, 4) : -1;
	case 0xcf: case 0xd3: return n >= 9 ? (int64_t)mp_be(p + 1, 8) : -1;
	}
	return -1;
}

#endif
