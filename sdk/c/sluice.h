/*
 * sluice.h: the C SDK for sluice stages (header-only). It implements the
 * stage ABI version 2 (docs/stage-abi.md): include it in one .c file, after
 * naming your handlers, and build a WASI reactor:
 *
 *     #define SLUICE_INIT   my_init     // optional: int my_init(sluice_value params)
 *     #define SLUICE_FILTER my_filter   // bool my_filter(const sluice_event *ev)
 *     //  or SLUICE_EVENT  my_event     // void my_event(sluice_event *ev, sluice_out *out)
 *     #define SLUICE_TICK   my_tick     // optional: void my_tick(int64_t now_ns, sluice_out *out)
 *     #define SLUICE_CLOSE  my_close    // optional: void my_close(void)
 *     #define SLUICE_FIND_KEY "comm"    // optional: the host finds it per batch, sluice_found(ev)
 *     #include "sluice.h"
 *
 *     clang-19 --target=wasm32-wasip1 -mexec-model=reactor -O2 -o stage.wasm stage.c
 *
 * (with Debian's wasi-libc see stages/build.sh for the sysroot).
 *
 * Events are msgpack maps (docs/event-format.md). Field access scans the
 * map in place: nothing is decoded or copied until asked. A handler keeps
 * an event (sluice_keep: the host passes the bytes on, nothing is
 * re-encoded), drops it (does nothing), sets fields of it (sluice_set_begin
 * ... sluice_set_end, or sluice_set_str: the host adds or replaces them),
 * or emits new or modified events with the writer (sluice_emit_begin ...
 * sluice_emit_end). Values and events point into the batch and are valid
 * until the handler returns.
 *
 * Every reader returns "missing" (a zero sluice_value) rather than reading
 * past the end of malformed input; nothing here traps on bad data.
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLUICE_ABI_VERSION 2
#define SLUICE_NO_INPUT 0xFFFFFFFFu

#define SLUICE__EXPORT(name) __attribute__((export_name(name)))
/* Helpers that take a NUL-terminated name are always inlined, so that the
 * strlen of a literal is computed by the compiler, not by a call into
 * libc's strlen loop for every field read or written. */
#define SLUICE__INLINE static inline __attribute__((always_inline))
#define SLUICE__IMPORT(name) __attribute__((import_module("sluice"), import_name(name)))

SLUICE__IMPORT("log") void sluice__host_log(int32_t level, const char *ptr, int32_t len);
SLUICE__IMPORT("set_error") void sluice__host_set_error(const char *ptr, int32_t len);
SLUICE__IMPORT("counter_add") void sluice__host_counter_add(const char *name, int32_t len, int64_t delta);
SLUICE__IMPORT("now") int64_t sluice__host_now(void);

/* ---- values ---------------------------------------------------------- */

/* One encoded msgpack value: p[0..len). len == 0 means missing. */
typedef struct {
	const uint8_t *p;
	uint32_t len;
} sluice_value;

typedef enum {
	SLUICE_MISSING, SLUICE_NIL, SLUICE_BOOL, SLUICE_INT, SLUICE_FLOAT, SLUICE_STR,
	SLUICE_BIN, SLUICE_ARRAY, SLUICE_MAP, SLUICE_EXT, SLUICE_INVALID
} sluice_type;

/* Whole encoded size of values whose first byte fixes it; 0 otherwise. */
static const uint8_t sluice__size[256] = {
	/* 0x00-0x7f positive fixint */
	[0x00 ... 0x7f] = 1,
	[0x80] = 1, [0x90] = 1, /* empty fixmap, fixarray */
	[0xa0] = 1, [0xa1] = 2, [0xa2] = 3, [0xa3] = 4, [0xa4] = 5, [0xa5] = 6, [0xa6] = 7, [0xa7] = 8,
	[0xa8] = 9, [0xa9] = 10, [0xaa] = 11, [0xab] = 12, [0xac] = 13, [0xad] = 14, [0xae] = 15, [0xaf] = 16,
	[0xb0] = 17, [0xb1] = 18, [0xb2] = 19, [0xb3] = 20, [0xb4] = 21, [0xb5] = 22, [0xb6] = 23, [0xb7] = 24,
	[0xb8] = 25, [0xb9] = 26, [0xba] = 27, [0xbb] = 28, [0xbc] = 29, [0xbd] = 30, [0xbe] = 31, [0xbf] = 32,
	[0xc0] = 1, [0xc2] = 1, [0xc3] = 1, [0xca] = 5, [0xcb] = 9,
	[0xcc] = 2, [0xcd] = 3, [0xce] = 5, [0xcf] = 9, [0xd0] = 2, [0xd1] = 3, [0xd2] = 5, [0xd3] = 9,
	[0xd4] = 3, [0xd5] = 4, [0xd6] = 6, [0xd7] = 10, [0xd8] = 18,
	[0xe0 ... 0xff] = 1,
};

static inline uint32_t sluice__be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static inline uint32_t sluice__be32(const uint8_t *p) {
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t sluice__be64(const uint8_t *p) { return (uint64_t)sluice__be32(p) << 32 | sluice__be32(p + 4); }
static inline uint32_t sluice__le32(const uint8_t *p) {
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Header of a sized value at b[i]: *h = header bytes, returns payload size
 * (str, bin, ext) or element count (array/map 16/32); *h = 0 when
 * truncated or invalid. */
static uint64_t sluice__sized(const uint8_t *b, uint64_t n, uint64_t i, uint32_t *h) {
	uint8_t c = b[i];
	*h = 0;
	switch (c) {
	case 0xc4: case 0xd9: if (i + 2 > n) return 0; *h = 2; return b[i + 1];
	case 0xc5: case 0xda: case 0xdc: case 0xde: if (i + 3 > n) return 0; *h = 3; return sluice__be16(b + i + 1);
	case 0xc6: case 0xdb: case 0xdd: case 0xdf: if (i + 5 > n) return 0; *h = 5; return sluice__be32(b + i + 1);
	case 0xc7: if (i + 2 > n) return 0; *h = 2; return (uint64_t)b[i + 1] + 1;
	case 0xc8: if (i + 3 > n) return 0; *h = 3; return (uint64_t)sluice__be16(b + i + 1) + 1;
	case 0xc9: if (i + 5 > n) return 0; *h = 5; return (uint64_t)sluice__be32(b + i + 1) + 1;
	}
	return 0;
}

/* Offset just past the value at b[i], or UINT64_MAX. Iterative: nesting
 * cannot exhaust the stack. */
static uint64_t sluice__skip(const uint8_t *b, uint64_t n, uint64_t i) {
	for (uint64_t pending = 1; pending > 0; pending--) {
		if (i >= n) return UINT64_MAX;
		uint8_t c = b[i];
		uint8_t sz = sluice__size[c];
		if (sz) { i += sz; continue; }
		if (c <= 0x8f) { pending += 2u * (c & 0x0f); i++; }
		else if (c <= 0x9f) { pending += c & 0x0f; i++; }
		else {
			uint32_t h;
			uint64_t len = sluice__sized(b, n, i, &h);
			if (!h) return UINT64_MAX;
			if (c == 0xdc || c == 0xdd) { pending += len; len = 0; }
			else if (c == 0xde || c == 0xdf) { pending += 2 * len; len = 0; }
			i += h + len;
		}
		if (i > n || pending - 1 > n - i) return UINT64_MAX;
	}
	return i <= n ? i : UINT64_MAX;
}

static inline sluice_value sluice_value_of(const uint8_t *p, uint32_t len) {
	sluice_value v = {p, len};
	if (!p || !len || sluice__skip(p, len, 0) != len) v.p = NULL, v.len = 0;
	return v;
}

static inline bool sluice_exists(sluice_value v) { return v.len > 0; }

static sluice_type sluice_type_of(sluice_value v) {
	if (!v.len) return SLUICE_MISSING;
	uint8_t c = v.p[0];
	if (c <= 0x7f || c >= 0xe0) return SLUICE_INT;
	if (c <= 0x8f) return SLUICE_MAP;
	if (c <= 0x9f) return SLUICE_ARRAY;
	if (c <= 0xbf) return SLUICE_STR;
	switch (c) {
	case 0xc0: return SLUICE_NIL;
	case 0xc2: case 0xc3: return SLUICE_BOOL;
	case 0xca: case 0xcb: return SLUICE_FLOAT;
	case 0xc4: case 0xc5: case 0xc6: return SLUICE_BIN;
	case 0xd9: case 0xda: case 0xdb: return SLUICE_STR;
	case 0xdc: case 0xdd: return SLUICE_ARRAY;
	case 0xde: case 0xdf: return SLUICE_MAP;
	case 0xc1: return SLUICE_INVALID;
	}
	if (c >= 0xcc && c <= 0xd3) return SLUICE_INT;
	return SLUICE_EXT;
}

/* A str (or bin) value: *s points into the batch (not NUL-terminated). */
static bool sluice_value_str(sluice_value v, const char **s, uint32_t *n) {
	if (!v.len) return false;
	uint8_t c = v.p[0];
	uint64_t h = 1, len;
	if ((c & 0xe0) == 0xa0) len = c & 0x1f;
	else if (c == 0xd9 || c == 0xda || c == 0xdb || c == 0xc4 || c == 0xc5 || c == 0xc6) {
		uint32_t hh;
		len = sluice__sized(v.p, v.len, 0, &hh);
		if (!hh) return false;
		h = hh;
	} else return false;
	if (h + len > v.len) return false;
	*s = (const char *)v.p + h, *n = (uint32_t)len;
	return true;
}

/* True when v is a str equal to the NUL-terminated s. */
SLUICE__INLINE bool sluice_value_str_eq(sluice_value v, const char *s) {
	const char *p;
	uint32_t n;
	return sluice_value_str(v, &p, &n) && strlen(s) == n && memcmp(p, s, n) == 0;
}

static bool sluice_value_int(sluice_value v, int64_t *out) {
	if (!v.len) return false;
	uint8_t c = v.p[0];
	if (c == 0xca || c == 0xcb) { /* HCL numbers may arrive as whole floats */
		double d;
		if (c == 0xcb && v.len >= 9) { uint64_t u = sluice__be64(v.p + 1); memcpy(&d, &u, 8); }
		else if (c == 0xca && v.len >= 5) { uint32_t u = sluice__be32(v.p + 1); float f; memcpy(&f, &u, 4); d = f; }
		else return false;
		if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != (double)(int64_t)d) return false;
		*out = (int64_t)d;
		return true;
	}
	if (c <= 0x7f) { *out = c; return true; }
	if (c >= 0xe0) { *out = (int8_t)c; return true; }
	uint8_t sz = sluice__size[c];
	if (c < 0xcc || c > 0xd3 || sz > v.len) return false;
	const uint8_t *p = v.p + 1;
	switch (c) {
	case 0xcc: *out = p[0]; return true;
	case 0xcd: *out = sluice__be16(p); return true;
	case 0xce: *out = sluice__be32(p); return true;
	case 0xcf: { uint64_t u = sluice__be64(p); if (u > INT64_MAX) return false; *out = (int64_t)u; return true; }
	case 0xd0: *out = (int8_t)p[0]; return true;
	case 0xd1: *out = (int16_t)sluice__be16(p); return true;
	case 0xd2: *out = (int32_t)sluice__be32(p); return true;
	default: *out = (int64_t)sluice__be64(p); return true;
	}
}

static bool sluice_value_uint(sluice_value v, uint64_t *out) {
	if (v.len >= 9 && v.p[0] == 0xcf) { *out = sluice__be64(v.p + 1); return true; }
	int64_t i;
	if (!sluice_value_int(v, &i) || i < 0) return false;
	*out = (uint64_t)i;
	return true;
}

static bool sluice_value_float(sluice_value v, double *out) {
	if (v.len >= 9 && v.p[0] == 0xcb) { uint64_t u = sluice__be64(v.p + 1); memcpy(out, &u, 8); return true; }
	if (v.len >= 5 && v.p[0] == 0xca) { uint32_t u = sluice__be32(v.p + 1); float f; memcpy(&f, &u, 4); *out = f; return true; }
	uint64_t u;
	if (sluice_value_uint(v, &u)) { *out = (double)u; return true; }
	int64_t i;
	if (sluice_value_int(v, &i)) { *out = (double)i; return true; }
	return false;
}

static inline bool sluice_value_bool(sluice_value v, bool *out) {
	if (v.len && (v.p[0] == 0xc2 || v.p[0] == 0xc3)) { *out = v.p[0] == 0xc3; return true; }
	return false;
}

/* Iteration over arrays and maps:
 *     sluice_iter it = sluice_iter_array(v); sluice_value el;
 *     while (sluice_next(&it, &el)) ...
 *     sluice_iter it = sluice_iter_map(v); sluice_value k, val;
 *     while (sluice_next_entry(&it, &k, &val)) ...
 */
typedef struct {
	const uint8_t *b;
	uint64_t n, i, left;
} sluice_iter;

static sluice_iter sluice__iter(sluice_value v, bool map) {
	sluice_iter it = {v.p, v.len, 0, 0};
	if (!v.len) return it;
	uint8_t c = v.p[0];
	if (map ? (c & 0xf0) == 0x80 : (c & 0xf0) == 0x90) { it.left = c & 0x0f; it.i = 1; return it; }
	if (map ? (c == 0xde || c == 0xdf) : (c == 0xdc || c == 0xdd)) {
		uint32_t h;
		uint64_t cnt = sluice__sized(v.p, v.len, 0, &h);
		if (h && cnt <= v.len) { it.left = cnt; it.i = h; }
	}
	return it;
}
static inline sluice_iter sluice_iter_array(sluice_value v) { return sluice__iter(v, false); }
static inline sluice_iter sluice_iter_map(sluice_value v) { return sluice__iter(v, true); }

static bool sluice_next(sluice_iter *it, sluice_value *el) {
	if (!it->left) return false;
	uint64_t e = sluice__skip(it->b, it->n, it->i);
	if (e == UINT64_MAX) { it->left = 0; return false; }
	el->p = it->b + it->i, el->len = (uint32_t)(e - it->i);
	it->i = e, it->left--;
	return true;
}

static bool sluice_next_entry(sluice_iter *it, sluice_value *key, sluice_value *val) {
	if (!it->left) return false;
	uint64_t ke = sluice__skip(it->b, it->n, it->i);
	uint64_t ve = ke == UINT64_MAX ? ke : sluice__skip(it->b, it->n, ke);
	if (ve == UINT64_MAX) { it->left = 0; return false; }
	key->p = it->b + it->i, key->len = (uint32_t)(ke - it->i);
	val->p = it->b + ke, val->len = (uint32_t)(ve - ke);
	it->i = ve, it->left--;
	return true;
}

static inline uint32_t sluice_value_count(sluice_value v) {
	sluice_iter it = sluice_iter_array(v);
	if (!it.left) it = sluice_iter_map(v);
	return (uint32_t)it.left;
}

/* The value under a str key of a map value (keylen bytes at key). */
static sluice_value sluice_map_getn(sluice_value m, const char *key, uint32_t keylen) {
	sluice_value none = {NULL, 0};
	const uint8_t *b = m.p;
	uint64_t n = m.len, i, left;
	if (!n) return none;
	if ((b[0] & 0xf0) == 0x80) left = b[0] & 0x0f, i = 1;
	else {
		sluice_iter it = sluice_iter_map(m);
		if (!it.i) return none;
		left = it.left, i = it.i;
	}
	for (; left > 0; left--) {
		if (i >= n) return none;
		uint8_t c = b[i];
		uint64_t ke;
		bool match = false;
		if ((c & 0xe0) == 0xa0) {
			ke = i + 1 + (c & 0x1f);
			/* Length, then bytes in line: memcmp is a call into libc, and
			 * most keys differ in length or first byte. */
			if ((uint32_t)(c & 0x1f) == keylen && ke <= n && (keylen == 0 || b[i + 1] == (uint8_t)key[0])) {
				match = true;
				for (uint32_t k = 1; k < keylen; k++)
					if (b[i + 1 + k] != (uint8_t)key[k]) { match = false; break; }
			}
		} else {
			sluice_value k = {b + i, (uint32_t)(n - i)};
			const char *s;
			uint32_t sl;
			ke = sluice__skip(b, n, i);
			if (ke == UINT64_MAX) return none;
			k.len = (uint32_t)(ke - i);
			match = sluice_value_str(k, &s, &sl) && sl == keylen && memcmp(s, key, keylen) == 0;
		}
		if (ke >= n) return none;
		uint8_t sz = sluice__size[b[ke]];
		uint64_t ve = sz ? ke + sz : sluice__skip(b, n, ke);
		if (ve == UINT64_MAX || ve > n) return none;
		if (match) { sluice_value v = {b + ke, (uint32_t)(ve - ke)}; return v; }
		i = ve;
	}
	return none;
}
SLUICE__INLINE sluice_value sluice_map_get(sluice_value m, const char *key) {
	return sluice_map_getn(m, key, (uint32_t)strlen(key));
}

/* ---- events ---------------------------------------------------------- */

typedef struct {
	sluice_value raw; /* the event's map */
	uint32_t index;   /* position in the batch */
} sluice_event;

SLUICE__INLINE sluice_value sluice_get(const sluice_event *ev, const char *key) { return sluice_map_get(ev->raw, key); }
SLUICE__INLINE bool sluice_has(const sluice_event *ev, const char *key) { return sluice_get(ev, key).len > 0; }
SLUICE__INLINE bool sluice_get_str(const sluice_event *ev, const char *key, const char **s, uint32_t *n) {
	return sluice_value_str(sluice_get(ev, key), s, n);
}
SLUICE__INLINE bool sluice_str_eq(const sluice_event *ev, const char *key, const char *want) {
	return sluice_value_str_eq(sluice_get(ev, key), want);
}
SLUICE__INLINE int64_t sluice_get_int(const sluice_event *ev, const char *key, int64_t def) {
	int64_t v;
	return sluice_value_int(sluice_get(ev, key), &v) ? v : def;
}
SLUICE__INLINE uint64_t sluice_get_uint(const sluice_event *ev, const char *key, uint64_t def) {
	uint64_t v;
	return sluice_value_uint(sluice_get(ev, key), &v) ? v : def;
}
SLUICE__INLINE bool sluice_get_bool(const sluice_event *ev, const char *key, bool def) {
	bool v;
	return sluice_value_bool(sluice_get(ev, key), &v) ? v : def;
}

/* ---- one key of every event, found by the host ------------------------- */

/* A handler that reads one key of every event first (a filter on comm)
 * can have the host find it in the whole batch at once, with the optional
 * import find_key (docs/stage-abi.md): stepping over a field costs ~10 ns
 * in a Wasm guest and a third of that in the host's native scan, and an
 * event's tenth field is a hundred ns into it.
 *
 *     #define SLUICE_FIND_KEY "comm"     // before including sluice.h
 *     sluice_value v = sluice_found(ev); // what sluice_get(ev, "comm") returns
 *
 * The SDK asks once per batch of at least SLUICE_FIND_KEY_MIN events (a
 * host call costs about a scan of a few events); a smaller batch, or one
 * the host refuses, is scanned by the guest as sluice_get does. A module
 * that uses it imports find_key, which agents from before it lack. */
#ifdef SLUICE_FIND_KEY
#ifndef SLUICE_FIND_KEY_MIN
#define SLUICE_FIND_KEY_MIN 4
#endif
SLUICE__IMPORT("find_key") int32_t sluice__host_find_key(const uint8_t *batch, int32_t len, const char *key, int32_t keylen, uint32_t *out);
static uint32_t *sluice__found;             /* per event: value start, value end */
static uint32_t sluice__found_cap, sluice__found_n; /* events the table covers; 0: none */

/* sluice__find fills the table for the batch p[0..len) of count events. */
static void sluice__find(const uint8_t *p, uint32_t len, uint32_t count) {
	sluice__found_n = 0;
	if (count < SLUICE_FIND_KEY_MIN) return;
	if (count > sluice__found_cap) {
		free(sluice__found);
		sluice__found = malloc(8 * (size_t)count);
		sluice__found_cap = sluice__found ? count : 0;
		if (!sluice__found) return; /* scanned by the guest instead */
	}
	if (sluice__host_find_key(p, (int32_t)len, SLUICE_FIND_KEY, (int32_t)(sizeof SLUICE_FIND_KEY - 1), sluice__found) == (int32_t)count)
		sluice__found_n = count;
}

/* The value of SLUICE_FIND_KEY in ev, missing when ev lacks it or is
 * malformed before it: sluice_get(ev, SLUICE_FIND_KEY), from the table. */
static inline sluice_value sluice_found(const sluice_event *ev) {
	uint32_t i = ev->index;
	if (i < sluice__found_n) {
		uint32_t s = sluice__found[2 * i], e = sluice__found[2 * i + 1];
		if (s <= e && e <= ev->raw.len) {
			sluice_value v = {ev->raw.p + s, e - s};
			return v;
		}
		if (s == 0xFFFFFFFFu) {
			sluice_value none = {NULL, 0};
			return none;
		}
	}
	return sluice_get(ev, SLUICE_FIND_KEY);
}
#endif

/* ---- many fields of one event ------------------------------------------ */

/* A handler that reads a known set of fields of every event (a mapping to
 * another schema reads dozens) looks them all up in one scan: the keys are
 * hashed once (length and first byte), and each entry of the event is
 * compared only with the wanted keys of its hash. No call per field, no
 * rescan.
 *
 *     enum { F_PID, F_COMM, F_N };
 *     static const char *const keys[F_N] = {"pid", "comm"};
 *     static sluice_fields fields;            // sluice_fields_init at init
 *     sluice_value v[F_N];
 *     sluice_fields_get(&fields, ev, v);      // v[F_PID], v[F_COMM]
 *
 * A missing field is a missing value; with duplicate keys the first wins,
 * as with sluice_get. At most SLUICE_FIELDS_MAX keys of 1 to 31 bytes.
 *
 * With SLUICE_FIND_KEYS defined before including sluice.h, the host finds
 * the keys instead, in every event of the batch at once, with the optional
 * import find_keys (docs/stage-abi.md): one call per set of fields and
 * batch of at least SLUICE_FIND_KEYS_MIN events, on the set's first use in
 * the batch. The host steps over an entry in a few ns, a Wasm guest in
 * ~10; sluice_fields_values then answers without copying:
 *
 *     const sluice_value *v = sluice_fields_values(&fields, ev, scratch);
 *
 * Smaller batches, and a batch the host refuses, are scanned as without
 * it. A set must then start zeroed (a static, as above): it keeps the
 * host's rows. A module that defines it imports find_keys, which agents
 * from before it lack. */
static void sluice_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#ifndef SLUICE_FIELDS_MAX
#define SLUICE_FIELDS_MAX 64
#endif
#ifdef SLUICE_FIND_KEYS
#if SLUICE_FIELDS_MAX > 64
#error "SLUICE_FIND_KEYS: find_keys takes at most 64 keys"
#endif
#ifndef SLUICE_FIND_KEYS_MIN
#define SLUICE_FIND_KEYS_MIN 4
#endif
SLUICE__IMPORT("find_keys") int32_t sluice__host_find_keys(const uint8_t *batch, int32_t len, const uint8_t *keys, int32_t keys_len, uint32_t *out);
/* The batch sluice_process is in: find_keys is asked about it lazily.
 * sluice__batch_gen changes with every batch and after it. */
static const uint8_t *sluice__batch_p;
static uint32_t sluice__batch_len, sluice__batch_count, sluice__batch_gen;
/* A row's pairs are sluice_values as they are. */
_Static_assert(sizeof(sluice_value) == 8 && _Alignof(sluice_value) <= 4, "find_keys: sluice_value is not {u32 address, u32 length}");
#endif
typedef struct {
	const char *const *keys;
	uint32_t n;
	uint8_t len[SLUICE_FIELDS_MAX];
	uint8_t head[64], next[SLUICE_FIELDS_MAX]; /* keys by sluice__fields_hash: 0xff ends a chain */
	uint32_t lens;                             /* bit n set when a key is n bytes long */
	uint64_t word[SLUICE_FIELDS_MAX], mask[SLUICE_FIELDS_MAX]; /* the first 8 bytes, compared at once */
#ifdef SLUICE_FIND_KEYS
	uint8_t *keys_blob; /* the keys as find_keys takes them (laid out as a batch) */
	uint32_t keys_len;
	/* find_keys' rows for batch gen: per event, n values (address and
	 * length), then the event's address and found | whole << 31. */
	uint32_t *rows;
	uint32_t rows_cap, rows_n, gen;
#endif
} sluice_fields;

SLUICE__INLINE uint32_t sluice__fields_hash(uint32_t len, uint8_t first) { return (len * 7 + first) & 63; }

/* False (with sluice_fail) for too many keys or a key longer than 31. */
static bool sluice_fields_init(sluice_fields *f, const char *const *keys, uint32_t n) {
	if (n > SLUICE_FIELDS_MAX) {
		sluice_fail("sluice_fields_init: %u keys; at most %d", n, SLUICE_FIELDS_MAX);
		return false;
	}
	f->keys = keys, f->n = n, f->lens = 0;
	memset(f->head, 0xff, sizeof f->head);
	for (uint32_t k = n; k-- > 0;) {
		size_t l = strlen(keys[k]);
		if (l == 0 || l > 31) {
			sluice_fail("sluice_fields_init: key \"%s\": want 1 to 31 bytes", keys[k]);
			return false;
		}
		uint32_t h = sluice__fields_hash((uint32_t)l, (uint8_t)keys[k][0]);
		f->len[k] = (uint8_t)l;
		f->lens |= 1u << l;
		f->word[k] = 0, f->mask[k] = 0;
		for (size_t j = 0; j < l && j < 8; j++) {
			f->word[k] |= (uint64_t)(uint8_t)keys[k][j] << (8 * j);
			f->mask[k] |= (uint64_t)0xff << (8 * j);
		}
		f->next[k] = f->head[h];
		f->head[h] = (uint8_t)k;
	}
#ifdef SLUICE_FIND_KEYS
	uint32_t bl = 4;
	for (uint32_t k = 0; k < n; k++) bl += 4 + f->len[k];
	free(f->keys_blob);
	f->keys_blob = malloc(bl), f->keys_len = bl;
	f->rows_n = 0, f->gen = sluice__batch_gen - 1; /* filled at the next use */
	if (!f->keys_blob) return true;                  /* scanned by the guest instead */
	uint8_t *q = f->keys_blob;
	memcpy(q, &n, 4), q += 4; /* little-endian, as Wasm is */
	for (uint32_t k = 0; k < n; k++) {
		uint32_t l = f->len[k];
		memcpy(q, &l, 4), memcpy(q + 4, keys[k], l), q += 4 + l;
	}
#endif
	return true;
}

#ifdef SLUICE_FIND_KEYS
/* sluice__fields_row returns ev's row of find_keys' answer for f, asking
 * the host on f's first use in a batch; NULL when there is none (a small
 * batch, one the host refused, an event that is not the batch's). */
static const uint32_t *sluice__fields_row(const sluice_fields *cf, const sluice_event *ev) {
	sluice_fields *f = (sluice_fields *)cf; /* the table is a cache: every set is a static */
	if (f->gen != sluice__batch_gen) {
		f->gen = sluice__batch_gen, f->rows_n = 0;
		uint32_t count = sluice__batch_count;
		uint64_t words = (uint64_t)count * (2 * f->n + 2);
		if (count < SLUICE_FIND_KEYS_MIN || !f->keys_blob || words > UINT32_MAX / 4) return NULL;
		if (words > f->rows_cap) {
			free(f->rows);
			f->rows = malloc(4 * (size_t)words);
			f->rows_cap = f->rows ? (uint32_t)words : 0;
			if (!f->rows) return NULL;
		}
		if (sluice__host_find_keys(sluice__batch_p, (int32_t)sluice__batch_len, f->keys_blob, (int32_t)f->keys_len, f->rows) == (int32_t)count)
			f->rows_n = count;
	}
	if (ev->index >= f->rows_n) return NULL;
	const uint32_t *r = f->rows + (size_t)ev->index * (2 * f->n + 2);
	/* An event a handler made up (a nested map) is not the batch's. */
	return r[2 * f->n] == (uint32_t)(uintptr_t)ev->raw.p ? r : NULL;
}
#endif

/* sluice__fields_scan fills out[0..f->n) with the values of f's keys in
 * ev; with stop, it stops once it has found every key. */
static bool sluice__fields_scan(const sluice_fields *f, const sluice_event *ev, sluice_value *out, bool stop, uint32_t *found) {
	memset(out, 0, f->n * sizeof *out);
	*found = 0;
	sluice_iter it = sluice_iter_map(ev->raw);
	if (!it.i) return false;
	const uint8_t *b = ev->raw.p;
	uint32_t n = ev->raw.len, i = (uint32_t)it.i, left = (uint32_t)it.left;
	for (; left > 0; left--) {
		if (i >= n) return false;
		uint8_t c = b[i];
		uint32_t ks, ke;
		if ((c & 0xe0) == 0xa0) ks = i + 1, ke = ks + (c & 0x1f);
		else {
			uint64_t e = sluice__skip(b, n, i);
			if (e == UINT64_MAX) return false;
			ke = (uint32_t)e, ks = ke; /* a key of another type matches nothing */
			sluice_value k = {b + i, ke - i};
			const char *s;
			uint32_t sl;
			if (sluice_value_str(k, &s, &sl) && sl <= 31) ks = ke - sl;
		}
		if (ke >= n) return false;
		uint8_t sz = sluice__size[b[ke]];
		uint64_t ve = sz ? (uint64_t)ke + sz : sluice__skip(b, n, ke);
		if (ve == UINT64_MAX || ve > n) return false;
		/* Most entries are not wanted: their key's length says so. */
		uint8_t k = ks < ke && (f->lens >> (ke - ks) & 1) ? f->head[sluice__fields_hash(ke - ks, b[ks])] : 0xff;
		for (; k != 0xff; k = f->next[k]) {
			const char *key = f->keys[k];
			uint32_t m = 0, l = f->len[k];
			if (l != ke - ks) continue;
			if ((uint64_t)ks + 8 <= n) {
				uint64_t w;
				memcpy(&w, b + ks, 8); /* one unaligned load */
				if ((w & f->mask[k]) != f->word[k]) continue;
				m = l < 8 ? l : 8;
			}
			while (m < l && b[ks + m] == (uint8_t)key[m]) m++;
			if (m == l && !out[k].len) {
				out[k].p = b + ke, out[k].len = (uint32_t)(ve - ke);
				if (++*found == f->n && stop) return false;
				break;
			}
		}
		i = (uint32_t)ve;
	}
	return i == n;
}

/* Fills out[0..f->n) with the values of f's keys in ev. True when the
 * event is a well-formed map to its end (so a handler that adds a missing
 * field may copy its body as it is). */
static bool sluice_fields_get(const sluice_fields *f, const sluice_event *ev, sluice_value *out) {
#ifdef SLUICE_FIND_KEYS
	const uint32_t *r = sluice__fields_row(f, ev);
	if (r) {
		memcpy(out, r, f->n * sizeof *out);
		return r[2 * f->n + 1] >> 31;
	}
#endif
	uint32_t found;
	return sluice__fields_scan(f, ev, out, false, &found);
}

/* sluice_fields_find is sluice_fields_get that stops at the last of f's
 * keys it finds: it returns how many it found (f->n: all of them, and
 * the rest of the event was not read). When it found fewer, it read the
 * whole event, and *whole (if whole is not NULL) says what
 * sluice_fields_get returns: the event is a well-formed map to its end. */
static uint32_t sluice_fields_find(const sluice_fields *f, const sluice_event *ev, sluice_value *out, bool *whole) {
#ifdef SLUICE_FIND_KEYS
	const uint32_t *r = sluice__fields_row(f, ev);
	if (r) {
		memcpy(out, r, f->n * sizeof *out);
		uint32_t n = r[2 * f->n + 1] & 0x7fffffff;
		if (whole) *whole = n < f->n && r[2 * f->n + 1] >> 31;
		return n;
	}
#endif
	uint32_t found;
	bool w = sluice__fields_scan(f, ev, out, true, &found);
	if (whole) *whole = found < f->n && w;
	return found;
}

/* sluice_fields_values returns the values of f's keys in ev, as
 * sluice_fields_get fills them: with SLUICE_FIND_KEYS, where the host
 * wrote them (nothing copied), otherwise (or when the host did not)
 * scratch, filled by a scan. Valid until the handler returns. */
static const sluice_value *sluice_fields_values(const sluice_fields *f, const sluice_event *ev, sluice_value *scratch) {
#ifdef SLUICE_FIND_KEYS
	const uint32_t *r = sluice__fields_row(f, ev);
	if (r) return (const sluice_value *)(const void *)r;
#endif
	sluice_fields_get(f, ev, scratch);
	return scratch;
}

/* ---- times ---------------------------------------------------------------- */

/* An RFC 3339 time (as the envelope's time and gadget timestamps are
 * written: 2006-01-02T15:04:05.999999999Z, or with a numeric offset such as
 * +02:00) as seconds since the Unix epoch and nanoseconds (0 to 999999999)
 * after them: every year from 0000 to 9999. Digits of the fraction past
 * the ninth are dropped, as Go's time.Parse drops them. False for other
 * text, an invalid date (February 30th) or a value that is not a str.
 *
 * Straight-line code and no division instruction: Wasm engines run
 * i32/i64.div as the CPU's divide, tens of cycles each. */
static bool sluice_value_unix(sluice_value v, int64_t *sec, int32_t *nsec) {
	const char *s;
	uint32_t n;
	if (!sluice_value_str(v, &s, &n) || n < 20) return false;
	const uint8_t *b = (const uint8_t *)s;
	if (b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':') return false;
	/* Each digit minus '0'; any byte that is not a digit makes bad > 9. */
	uint32_t d0 = b[0] - (uint32_t)'0', d1 = b[1] - (uint32_t)'0', d2 = b[2] - (uint32_t)'0', d3 = b[3] - (uint32_t)'0';
	uint32_t d5 = b[5] - (uint32_t)'0', d6 = b[6] - (uint32_t)'0', d8 = b[8] - (uint32_t)'0', d9 = b[9] - (uint32_t)'0';
	uint32_t d11 = b[11] - (uint32_t)'0', d12 = b[12] - (uint32_t)'0', d14 = b[14] - (uint32_t)'0', d15 = b[15] - (uint32_t)'0';
	uint32_t d17 = b[17] - (uint32_t)'0', d18 = b[18] - (uint32_t)'0';
	uint32_t bad = d0 | d1 | d2 | d3 | d5 | d6 | d8 | d9 | d11 | d12 | d14 | d15 | d17 | d18;
	if (bad > 9 && (d0 > 9 || d1 > 9 || d2 > 9 || d3 > 9 || d5 > 9 || d6 > 9 || d8 > 9 || d9 > 9 || d11 > 9 || d12 > 9 ||
	                d14 > 9 || d15 > 9 || d17 > 9 || d18 > 9))
		return false;
	uint32_t year = d0 * 1000 + d1 * 100 + d2 * 10 + d3, month = d5 * 10 + d6, day = d8 * 10 + d9;
	uint32_t hh = d11 * 10 + d12, mm = d14 * 10 + d15, ss = d17 * 10 + d18;
	if (month < 1 || month > 12 || day < 1 || hh > 23 || mm > 59 || ss > 59) return false;
	static const uint8_t mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	/* year / 100 as (year * 5243) >> 19: exact below 43699. */
	uint32_t century = (year * 5243) >> 19;
	bool leap = (year & 3) == 0 && (year != century * 100 || (century & 3) == 0);
	if (day > mdays[month - 1] || (month == 2 && day == 29 && !leap)) return false;
	uint32_t i = 19;
	int32_t frac = 0;
	if (i < n && b[i] == '.') {
		uint32_t d = 0;
		for (i++; i < n && b[i] >= '0' && b[i] <= '9'; i++, d++)
			if (d < 9) frac = frac * 10 + (b[i] - '0');
		if (d == 0) return false;
		for (; d < 9; d++) frac *= 10;
	}
	int32_t off = 0;
	if (i + 1 == n && b[i] == 'Z') {
	} else if (i + 6 == n && (b[i] == '+' || b[i] == '-') && b[i + 3] == ':') {
		uint32_t o1 = b[i + 1] - (uint32_t)'0', o2 = b[i + 2] - (uint32_t)'0', o4 = b[i + 4] - (uint32_t)'0', o5 = b[i + 5] - (uint32_t)'0';
		if (o1 > 9 || o2 > 9 || o4 > 9 || o5 > 9) return false;
		uint32_t oh = o1 * 10 + o2, om = o4 * 10 + o5;
		if (oh > 23 || om > 59) return false;
		off = (int32_t)(oh * 60 + om) * 60;
		if (b[i] == '-') off = -off;
	} else return false;
	/* Days since 1970-01-01 of a proleptic Gregorian date (Howard
	 * Hinnant's days_from_civil), on a year 400 later so that it is never
	 * negative (a year that starts in March: 0000-01 is year -1): the
	 * divisions are shifts and multiplications, and 400 years are
	 * 146097 days. */
	uint32_t y = year + 400 - (month <= 2);
	uint32_t yc = (y * 5243) >> 19; /* y / 100 */
	uint32_t mp = month > 2 ? month - 3 : month + 9;
	uint32_t doy = ((153 * mp + 2) * 52429 >> 18) + day - 1; /* (153 * mp + 2) / 5: exact below 43690 */
	int64_t days = (int64_t)(y * 365 + (y >> 2) - yc + (yc >> 2) + doy) - 146097 - 719468;
	*sec = days * 86400 + (int64_t)(hh * 3600 + mm * 60 + ss) - off;
	*nsec = frac;
	return true;
}

/* sluice_value_unix as nanoseconds since the Unix epoch: false also for
 * a time outside the years 1678 to 2262, which int64 nanoseconds hold. */
static bool sluice_value_time(sluice_value v, int64_t *ns) {
	int64_t sec;
	int32_t nsec;
	if (!sluice_value_unix(v, &sec, &nsec)) return false;
	if (sec < -9223372037LL || sec > 9223372036LL || (sec == -9223372037LL && nsec < 145224192) || (sec == 9223372036LL && nsec > 854775807))
		return false;
	*ns = (int64_t)((uint64_t)sec * 1000000000u + (uint64_t)nsec); /* in range: the wrap is exact */
	return true;
}

/* ---- host services ---------------------------------------------------- */

enum { SLUICE_DEBUG = 0, SLUICE_INFO = 1, SLUICE_WARN = 2, SLUICE_ERROR = 3 };

SLUICE__INLINE void sluice_log(int level, const char *msg) { sluice__host_log(level, msg, (int32_t)strlen(msg)); }

static void sluice_logf(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sluice_logf(int level, const char *fmt, ...) {
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0) return;
	sluice__host_log(level, buf, n < (int)sizeof buf ? n : (int)sizeof buf - 1);
}

/* Wall-clock time from the host, ns since the Unix epoch. */
static inline int64_t sluice_now_ns(void) { return sluice__host_now(); }

/* The message of a failing init, process or tick (printf-style). */
static char sluice__err[512];
static bool sluice__failed;
static void sluice_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sluice_fail(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sluice__err, sizeof sluice__err, fmt, ap);
	va_end(ap);
	sluice__failed = true;
}

/* Counters the stage defines: exported as
 * sluice_stage_guest_total{component="stage",name="<stage>",counter="<name>"}.
 * sluice_count only adds in guest memory; the SDK hands the sums to the
 * host once at the end of each call. */
#ifndef SLUICE_MAX_COUNTERS
#define SLUICE_MAX_COUNTERS 32
#endif
typedef struct {
	const char *name;
	int64_t pending;
} sluice_counter;
static sluice_counter sluice__counters[SLUICE_MAX_COUNTERS];
static int sluice__ncounters;

/* The counter called name (a string that outlives the module: a literal).
 * NULL when SLUICE_MAX_COUNTERS are in use. */
static sluice_counter *sluice_counter_new(const char *name) {
	for (int i = 0; i < sluice__ncounters; i++)
		if (strcmp(sluice__counters[i].name, name) == 0) return &sluice__counters[i];
	if (sluice__ncounters == SLUICE_MAX_COUNTERS) return NULL;
	sluice__counters[sluice__ncounters].name = name;
	return &sluice__counters[sluice__ncounters++];
}
static inline void sluice_count(sluice_counter *c, int64_t delta) { if (c) c->pending += delta; }
static void sluice__flush_counters(void) {
	for (int i = 0; i < sluice__ncounters; i++) {
		sluice_counter *c = &sluice__counters[i];
		if (c->pending) {
			sluice__host_counter_add(c->name, (int32_t)strlen(c->name), c->pending);
			c->pending = 0;
		}
	}
}

/* ---- output ------------------------------------------------------------ */

/* The result of one call, and a msgpack writer for the event being
 * emitted. Maps and arrays opened with sluice_w_map/sluice_w_array count
 * their entries; close them with sluice_w_end. */
typedef struct {
	uint8_t *buf;
	uint32_t len, cap, count;
	bool oom;
	uint32_t emit_at;           /* offset of the open EMIT's length */
	uint32_t stack[16], counts[16];
	bool is_map[16];
	int depth;
} sluice_out;

static bool sluice__grow(sluice_out *o, uint32_t n) {
	if (o->oom) return false;
	uint64_t cap = o->cap ? o->cap : 4096;
	while (cap < (uint64_t)o->len + n) cap *= 2;
	if (cap > UINT32_MAX) { o->oom = true; return false; }
	uint8_t *nb = realloc(o->buf, (size_t)cap);
	if (!nb) { o->oom = true; return false; }
	o->buf = nb, o->cap = (uint32_t)cap;
	return true;
}
/* Room for n more bytes: in line, the common case a comparison. */
static inline bool sluice__reserve(sluice_out *o, uint32_t n) {
	if (!o->oom && (uint64_t)o->len + n <= o->cap) return true;
	return sluice__grow(o, n);
}
static inline void sluice__put(sluice_out *o, const void *p, uint32_t n) {
	if (sluice__reserve(o, n)) memcpy(o->buf + o->len, p, n), o->len += n;
}
static inline void sluice__put1(sluice_out *o, uint8_t c) { if (sluice__reserve(o, 1)) o->buf[o->len++] = c; }
static inline void sluice__put_le32(sluice_out *o, uint32_t v) {
	uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	sluice__put(o, b, 4);
}
static inline void sluice__put_be(sluice_out *o, uint8_t tag, uint64_t v, int bytes) {
	uint8_t b[9];
	b[0] = tag;
	for (int i = 0; i < bytes; i++) b[1 + i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
	sluice__put(o, b, (uint32_t)bytes + 1);
}

/* Pass ev on unchanged: the host reuses its bytes. */
static inline void sluice_keep(sluice_out *o, const sluice_event *ev) {
	sluice__put1(o, 1);
	sluice__put_le32(o, ev->index);
	o->count++;
}

static inline void sluice__count_value(sluice_out *o) {
	if (o->depth > 0 && !o->is_map[o->depth - 1]) o->counts[o->depth - 1]++;
}

static void sluice_w_map(sluice_out *o) {
	sluice__count_value(o);
	if (o->depth == 16) { o->oom = true; return; }
	o->stack[o->depth] = o->len, o->counts[o->depth] = 0, o->is_map[o->depth] = true, o->depth++;
	sluice__put_be(o, 0xdf, 0, 4);
}
static void sluice_w_array(sluice_out *o) {
	sluice__count_value(o);
	if (o->depth == 16) { o->oom = true; return; }
	o->stack[o->depth] = o->len, o->counts[o->depth] = 0, o->is_map[o->depth] = false, o->depth++;
	sluice__put_be(o, 0xdd, 0, 4);
}
/* Closes the innermost map or array, shrinking its header to one byte when
 * its count fits (up to 15); larger ones keep their 32-bit header rather
 * than move their contents. */
static void sluice_w_end(sluice_out *o) {
	if (o->depth == 0 || o->oom) return;
	o->depth--;
	uint32_t at = o->stack[o->depth], n = o->counts[o->depth];
	bool map = o->is_map[o->depth];
	if (n <= 15) {
		o->buf[at] = (uint8_t)((map ? 0x80 : 0x90) | n);
		memmove(o->buf + at + 1, o->buf + at + 5, o->len - at - 5);
		o->len -= 4;
	} else {
		o->buf[at + 1] = (uint8_t)(n >> 24), o->buf[at + 2] = (uint8_t)(n >> 16);
		o->buf[at + 3] = (uint8_t)(n >> 8), o->buf[at + 4] = (uint8_t)n;
	}
}

static void sluice__strhdr(sluice_out *o, uint32_t n) {
	if (n <= 31) sluice__put1(o, (uint8_t)(0xa0 | n));
	else if (n <= 0xff) sluice__put_be(o, 0xd9, n, 1);
	else if (n <= 0xffff) sluice__put_be(o, 0xda, n, 2);
	else sluice__put_be(o, 0xdb, n, 4);
}
/* A map key. */
SLUICE__INLINE void sluice_w_key(sluice_out *o, const char *k) {
	if (o->depth > 0 && o->is_map[o->depth - 1]) o->counts[o->depth - 1]++;
	uint32_t n = (uint32_t)strlen(k);
	sluice__strhdr(o, n);
	sluice__put(o, k, n);
}
static inline void sluice_w_strn(sluice_out *o, const char *s, uint32_t n) {
	sluice__count_value(o);
	sluice__strhdr(o, n);
	sluice__put(o, s, n);
}
SLUICE__INLINE void sluice_w_str(sluice_out *o, const char *s) { sluice_w_strn(o, s, (uint32_t)strlen(s)); }
static void sluice_w_uint(sluice_out *o, uint64_t v) {
	sluice__count_value(o);
	if (v <= 0x7f) sluice__put1(o, (uint8_t)v);
	else if (v <= 0xff) sluice__put_be(o, 0xcc, v, 1);
	else if (v <= 0xffff) sluice__put_be(o, 0xcd, v, 2);
	else if (v <= 0xffffffffu) sluice__put_be(o, 0xce, v, 4);
	else sluice__put_be(o, 0xcf, v, 8);
}
static void sluice_w_int(sluice_out *o, int64_t v) {
	if (v >= 0) { sluice_w_uint(o, (uint64_t)v); return; }
	sluice__count_value(o);
	if (v >= -32) sluice__put1(o, (uint8_t)v);
	else if (v >= INT8_MIN) sluice__put_be(o, 0xd0, (uint64_t)v, 1);
	else if (v >= INT16_MIN) sluice__put_be(o, 0xd1, (uint64_t)v, 2);
	else if (v >= INT32_MIN) sluice__put_be(o, 0xd2, (uint64_t)v, 4);
	else sluice__put_be(o, 0xd3, (uint64_t)v, 8);
}
static inline void sluice_w_float(sluice_out *o, double d) {
	uint64_t u;
	memcpy(&u, &d, 8);
	sluice__count_value(o);
	sluice__put_be(o, 0xcb, u, 8);
}
static inline void sluice_w_bool(sluice_out *o, bool b) { sluice__count_value(o); sluice__put1(o, b ? 0xc3 : 0xc2); }
static inline void sluice_w_nil(sluice_out *o) { sluice__count_value(o); sluice__put1(o, 0xc0); }
/* An encoded value as it is (a field of an event); a missing one as nil. */
static inline void sluice_w_value(sluice_out *o, sluice_value v) {
	if (!v.len) { sluice_w_nil(o); return; }
	sluice__count_value(o);
	sluice__put(o, v.p, v.len);
}

/* Starts emitting an event derived from input `from` (NULL: from no input,
 * e.g. a summary) and opens its map: write keys and values, then call
 * sluice_emit_end. */
static void sluice_emit_begin(sluice_out *o, const sluice_event *from) {
	sluice__put1(o, 2);
	sluice__put_le32(o, from ? from->index : SLUICE_NO_INPUT);
	o->emit_at = o->len;
	sluice__put_le32(o, 0);
	o->depth = 0;
	sluice_w_map(o);
}

/* Copies the fields of ev into the open map, except those named in skip
 * (nskip names, at most SLUICE_MAX_SKIP): how a modified event is built.
 * Write replacements and additions after it. */
#define SLUICE_MAX_SKIP 16
static void sluice_w_fields(sluice_out *o, const sluice_event *ev, const char *const *skip, int nskip) {
	/* Entries are contiguous in the input, so runs of kept entries are
	 * copied with one memcpy each: a modified event usually costs one copy
	 * of its body, not two per field. */
	uint32_t skiplen[SLUICE_MAX_SKIP];
	if (nskip > SLUICE_MAX_SKIP) {
		/* Copying the names past the limit would emit their keys twice. */
		sluice_fail("sluice_w_fields: %d names to leave out; at most %d", nskip, SLUICE_MAX_SKIP);
		return;
	}
	for (int i = 0; i < nskip; i++) skiplen[i] = (uint32_t)strlen(skip[i]);
	sluice_iter it = sluice_iter_map(ev->raw);
	bool any = false;
	for (int i = 0; i < nskip && !any; i++) any = sluice_map_getn(ev->raw, skip[i], skiplen[i]).len > 0;
	if (!any && it.i && ev->raw.len >= it.i) {
		/* Nothing to leave out (adding a field, the common case): the
		 * whole body in one copy, found by the fast key scan. */
		sluice__put(o, ev->raw.p + it.i, ev->raw.len - (uint32_t)it.i);
		if (o->depth > 0) o->counts[o->depth - 1] += (uint32_t)it.left;
		return;
	}
	sluice_value k, v;
	const uint8_t *run = NULL;
	uint32_t runlen = 0, kept = 0;
	while (sluice_next_entry(&it, &k, &v)) {
		bool drop = false;
		const char *ks;
		uint32_t kn;
		if (nskip > 0 && sluice_value_str(k, &ks, &kn)) {
			for (int i = 0; i < nskip && !drop; i++)
				drop = skiplen[i] == kn && memcmp(ks, skip[i], kn) == 0;
		}
		if (drop) {
			if (runlen) sluice__put(o, run, runlen);
			run = NULL, runlen = 0;
			continue;
		}
		if (!run) run = k.p;
		runlen += k.len + v.len;
		kept++;
	}
	if (runlen) sluice__put(o, run, runlen);
	if (o->depth > 0) o->counts[o->depth - 1] += kept;
}

/* Setting fields of an input event (ABI version 2's SET): the event goes
 * on with each field's value replaced where it has the key, and the
 * others added after its fields; one that has every field with that value
 * already goes on unchanged, as with sluice_keep. The host makes the
 * event, in native code: an enrichment writes only its fields, not a copy
 * of the event.
 *
 *     sluice_set_begin(out, ev);
 *     sluice_w_key(out, "user"), sluice_w_str(out, name);
 *     sluice_set_end(out);
 *
 * Keys must be distinct (the host refuses the batch otherwise). */
static void sluice_set_begin(sluice_out *o, const sluice_event *ev) {
	sluice__put1(o, 3);
	sluice__put_le32(o, ev->index);
	o->emit_at = o->len;
	sluice__put_le32(o, 0);
	o->depth = 0;
	sluice_w_map(o);
}
static void sluice_emit_end(sluice_out *o);
static inline void sluice_set_end(sluice_out *o) { sluice_emit_end(o); }

/* sluice_set_strn sets one str field of ev: the key of kn bytes at key to
 * the n bytes at s, written at once. */
static void sluice_set_strn(sluice_out *o, const sluice_event *ev, const char *key, uint32_t kn, const char *s, uint32_t n) {
	if (!sluice__reserve(o, 1 + 4 + 4 + 1 + 5 + kn + 5 + n)) return;
	uint8_t *start = o->buf + o->len, *p = start;
	*p++ = 3;
	p[0] = (uint8_t)ev->index, p[1] = (uint8_t)(ev->index >> 8), p[2] = (uint8_t)(ev->index >> 16), p[3] = (uint8_t)(ev->index >> 24);
	p += 8; /* the index, then the length, written below */
	*p++ = 0x81; /* one entry */
	for (int k = 0; k < 2; k++) {
		const char *str = k ? s : key;
		uint32_t len = k ? n : kn;
		if (len <= 31) *p++ = (uint8_t)(0xa0 | len);
		else if (len <= 0xff) *p++ = 0xd9, *p++ = (uint8_t)len;
		else if (len <= 0xffff) *p++ = 0xda, *p++ = (uint8_t)(len >> 8), *p++ = (uint8_t)len;
		else *p++ = 0xdb, *p++ = (uint8_t)(len >> 24), *p++ = (uint8_t)(len >> 16), *p++ = (uint8_t)(len >> 8), *p++ = (uint8_t)len;
		memcpy(p, str, len), p += len;
	}
	uint32_t payload = (uint32_t)(p - start) - 9;
	start[5] = (uint8_t)payload, start[6] = (uint8_t)(payload >> 8), start[7] = (uint8_t)(payload >> 16), start[8] = (uint8_t)(payload >> 24);
	o->len += (uint32_t)(p - start);
	o->count++;
}
/* sluice_set_str sets the str field key (NUL-terminated) of ev to the n
 * bytes at s. */
SLUICE__INLINE void sluice_set_str(sluice_out *o, const sluice_event *ev, const char *key, const char *s, uint32_t n) {
	sluice_set_strn(o, ev, key, (uint32_t)strlen(key), s, n);
}

/* Emitting an event written in place, for handlers that build large
 * events (a mapping to another schema): the writer above checks for room
 * at every value, which costs more than writing it. sluice_emit_reserve
 * starts an EMIT derived from `from` (NULL: from no input) and returns
 * room for max bytes (NULL when out of memory: emit nothing then); write
 * one msgpack map there, at most max bytes, and finish with
 * sluice_emit_commit and the number of bytes written. */
static uint8_t *sluice_emit_reserve(sluice_out *o, const sluice_event *from, uint32_t max) {
	if (!sluice__reserve(o, 9 + max)) return NULL;
	sluice__put1(o, 2);
	sluice__put_le32(o, from ? from->index : SLUICE_NO_INPUT);
	o->emit_at = o->len;
	sluice__put_le32(o, 0);
	return o->buf + o->len;
}
static void sluice_emit_commit(sluice_out *o, uint32_t n) {
	if (o->oom) return;
	o->len += n;
	uint8_t *p = o->buf + o->emit_at;
	p[0] = (uint8_t)n, p[1] = (uint8_t)(n >> 8), p[2] = (uint8_t)(n >> 16), p[3] = (uint8_t)(n >> 24);
	o->count++;
}

static void sluice_emit_end(sluice_out *o) {
	while (o->depth > 0) sluice_w_end(o);
	if (o->oom) return;
	uint32_t n = o->len - o->emit_at - 4;
	uint8_t *p = o->buf + o->emit_at;
	p[0] = (uint8_t)n, p[1] = (uint8_t)(n >> 8), p[2] = (uint8_t)(n >> 16), p[3] = (uint8_t)(n >> 24);
	o->count++;
}

/* ---- the exports ------------------------------------------------------- */

#if !defined(SLUICE_FILTER) && !defined(SLUICE_EVENT)
#error "define SLUICE_FILTER or SLUICE_EVENT (the name of your handler) before including sluice.h"
#endif

#ifdef SLUICE_INIT
static int SLUICE_INIT(sluice_value params);
#endif
#ifdef SLUICE_FILTER
static bool SLUICE_FILTER(const sluice_event *ev);
#endif
#ifdef SLUICE_EVENT
static void SLUICE_EVENT(sluice_event *ev, sluice_out *out);
#endif
#ifdef SLUICE_TICK
static void SLUICE_TICK(int64_t now_ns, sluice_out *out);
#endif
#ifdef SLUICE_CLOSE
static void SLUICE_CLOSE(void);
#endif

static uint8_t *sluice__in;
static uint32_t sluice__in_cap;
static sluice_out sluice__out;

SLUICE__EXPORT("sluice_abi_version") int32_t sluice_abi_version(void) { return SLUICE_ABI_VERSION; }

SLUICE__EXPORT("sluice_alloc") uint8_t *sluice_alloc(int32_t size) {
	if (size < 0) return NULL;
	uint32_t n = size ? (uint32_t)size : 1;
	if (n > sluice__in_cap) {
		free(sluice__in);
		sluice__in = malloc(n);
		sluice__in_cap = sluice__in ? n : 0;
	}
	return sluice__in;
}

static int sluice__error(void) {
	sluice__host_set_error(sluice__err, (int32_t)strlen(sluice__err));
	sluice__failed = false;
	return -1;
}

SLUICE__EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t len) {
	sluice_value params = sluice_value_of(p, (uint32_t)len);
	if (len == 0) {
		static const uint8_t empty[1] = {0x80};
		params.p = empty, params.len = 1;
	} else if (!params.len || sluice_type_of(params) != SLUICE_MAP) {
		sluice_fail("params are not one well-formed msgpack map");
		return sluice__error();
	}
	int rc = 0;
#ifdef SLUICE_INIT
	rc = SLUICE_INIT(params);
#endif
	sluice__flush_counters();
	if (rc != 0 || sluice__failed) {
		if (!sluice__err[0]) sluice_fail("init failed (code %d)", rc);
		sluice__error();
		return rc ? rc : 1;
	}
	return 0;
}

static int64_t sluice__result(sluice_out *o) {
	sluice__flush_counters();
	if (o->oom && !sluice__failed) sluice_fail("out of memory building the result");
	if (sluice__failed) return sluice__error();
	uint8_t *p = o->buf;
	p[0] = (uint8_t)o->count, p[1] = (uint8_t)(o->count >> 8), p[2] = (uint8_t)(o->count >> 16), p[3] = (uint8_t)(o->count >> 24);
	return (int64_t)(uintptr_t)o->buf << 32 | o->len;
}

static void sluice__begin(sluice_out *o) {
	o->len = 0, o->count = 0, o->oom = false, o->depth = 0;
#ifdef SLUICE_FIND_KEYS
	sluice__batch_count = 0, sluice__batch_gen++; /* rows are one batch's */
#endif
	sluice__put_le32(o, 0);
}

SLUICE__EXPORT("sluice_process") int64_t sluice_process(const uint8_t *p, int32_t len) {
	sluice_out *o = &sluice__out;
	sluice__begin(o);
	uint64_t n = (uint64_t)(uint32_t)len;
	if (n < 4) { sluice_fail("read batch: %llu bytes is too short for its count", (unsigned long long)n); return sluice__error(); }
	uint32_t count = sluice__le32(p);
	if (count > (n - 4) / 4) { sluice_fail("read batch: count %u does not fit %llu bytes", count, (unsigned long long)n); return sluice__error(); }
#ifdef SLUICE_FILTER
	/* A filter keeps at most every event: reserve once, write in place. */
	if (!sluice__reserve(o, 5 * count)) return sluice__result(o);
#endif
#ifdef SLUICE_FIND_KEY
	sluice__find(p, (uint32_t)n, count);
#endif
#ifdef SLUICE_FIND_KEYS
	sluice__batch_p = p, sluice__batch_len = (uint32_t)n, sluice__batch_count = count, sluice__batch_gen++;
#endif
	uint64_t off = 4;
	for (uint32_t i = 0; i < count; i++) {
		if (n - off < 4) { sluice_fail("read batch: event %u of %u: truncated length", i, count); return sluice__error(); }
		uint32_t l = sluice__le32(p + off);
		off += 4;
		if (l > n - off) { sluice_fail("read batch: event %u of %u: length %u past the end", i, count, l); return sluice__error(); }
		sluice_event ev = {{p + off, l}, i};
		off += l;
#ifdef SLUICE_FILTER
		if (SLUICE_FILTER(&ev)) {
			uint8_t *q = o->buf + o->len;
			q[0] = 1, q[1] = (uint8_t)i, q[2] = (uint8_t)(i >> 8), q[3] = (uint8_t)(i >> 16), q[4] = (uint8_t)(i >> 24);
			o->len += 5, o->count++;
		}
#else
		SLUICE_EVENT(&ev, o);
#endif
		if (sluice__failed) break;
	}
#ifdef SLUICE_FIND_KEY
	sluice__found_n = 0; /* the table is this batch's */
#endif

	return sluice__result(o);
}

#ifdef SLUICE_TICK
SLUICE__EXPORT("sluice_tick") int64_t sluice_tick(int64_t now_ns) {
	sluice_out *o = &sluice__out;
	sluice__begin(o);
	SLUICE_TICK(now_ns, o);
	return sluice__result(o);
}
#endif

SLUICE__EXPORT("sluice_close") void sluice_close(void) {
#ifdef SLUICE_CLOSE
	SLUICE_CLOSE();
#endif
	sluice__flush_counters();
}

#endif /* SLUICE_H */
