/*
 * sluice_gadget.h: the C SDK for gadget modules (header-only): the Wasm
 * module a gadget carries, which runs with the gadget's lifecycle and sees
 * its events first (docs/stage-abi.md, "Gadget modules").
 *
 * Name the lifecycle hooks you want, then include it; each is
 * int hook(void), 0 for success (a failure's message: sluice_gadget_fail):
 *
 *     #define SLUICE_GADGET_INIT  my_init    // before the gadget loads: params
 *     #define SLUICE_GADGET_START my_start   // loaded and attached: maps
 *     #define SLUICE_GADGET_STOP  my_stop    // before it detaches
 *     #include "sluice_gadget.h"
 *
 * To process the gadget's events too, use sluice.h as for a stage (its
 * SLUICE_FILTER or SLUICE_EVENT handler gets them) and include this header
 * after it; sluice_init then gets the gadget's parameters (name -> text).
 * Alone, this header exports sluice_abi_version itself.
 *
 * Every function returns >= 0 on success or a SLUICE_GADGET_E* code;
 * sluice_gadget_last_error has the host's message. Text results are
 * copied into the caller's buffer, NUL-terminated, and the functions
 * return the text's length (a result >= cap means it was cut).
 */
#ifndef SLUICE_GADGET_H
#define SLUICE_GADGET_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define SLUICE_GADGET__IMPORT(name) __attribute__((import_module("sluice_gadget"), import_name(name)))
#define SLUICE_GADGET__EXPORT(name) __attribute__((export_name(name)))

SLUICE_GADGET__IMPORT("param_get") int32_t sluice_gadget__param_get(const char *, int32_t, char *, int32_t);
SLUICE_GADGET__IMPORT("param_set") int32_t sluice_gadget__param_set(const char *, int32_t, const char *, int32_t);
SLUICE_GADGET__IMPORT("map_open") int32_t sluice_gadget__map_open(const char *, int32_t);
SLUICE_GADGET__IMPORT("map_info") int32_t sluice_gadget__map_info(int32_t, uint32_t *);
SLUICE_GADGET__IMPORT("map_lookup") int32_t sluice_gadget__map_lookup(int32_t, const void *, int32_t, void *, int32_t);
SLUICE_GADGET__IMPORT("map_update") int32_t sluice_gadget__map_update(int32_t, const void *, int32_t, const void *, int32_t, int64_t);
SLUICE_GADGET__IMPORT("map_delete") int32_t sluice_gadget__map_delete(int32_t, const void *, int32_t);
SLUICE_GADGET__IMPORT("map_next_key") int32_t sluice_gadget__map_next_key(int32_t, const void *, int32_t, void *, int32_t);
SLUICE_GADGET__IMPORT("ksym_name") int32_t sluice_gadget__ksym_name(int64_t, char *, int32_t, uint64_t *);
SLUICE_GADGET__IMPORT("ksym_addr") int32_t sluice_gadget__ksym_addr(const char *, int32_t, uint64_t *);
SLUICE_GADGET__IMPORT("syscall_name") int32_t sluice_gadget__syscall_name(int32_t, char *, int32_t);
SLUICE_GADGET__IMPORT("syscall_number") int32_t sluice_gadget__syscall_number(const char *, int32_t);
SLUICE_GADGET__IMPORT("last_error") int32_t sluice_gadget__last_error(char *, int32_t);
__attribute__((import_module("sluice"), import_name("set_error"))) void sluice_gadget__set_error(const char *, int32_t);

enum {
	SLUICE_GADGET_ENOTFOUND = -1, /* no such parameter, map, key, symbol, syscall; end of iteration */
	SLUICE_GADGET_EINVAL = -2,    /* a value that does not fit, a wrong size, a bad handle */
	SLUICE_GADGET_EPHASE = -3,    /* not now: param_set after load, a map before it */
	SLUICE_GADGET_EEXIST = -4,    /* update with SLUICE_GADGET_NOEXIST of a key that exists */
	SLUICE_GADGET_ESYSTEM = -5,   /* the kernel or the system refused */
};

/* map_update flags: the kernel's BPF_ANY, BPF_NOEXIST, BPF_EXIST. */
enum { SLUICE_GADGET_ANY = 0, SLUICE_GADGET_NOEXIST = 1, SLUICE_GADGET_EXIST = 2 };

typedef struct {
	uint32_t type; /* BPF_MAP_TYPE_* */
	uint32_t key_size;
	uint32_t value_size; /* per-CPU maps: every possible CPU's value, 8-byte aligned each */
	uint32_t max_entries;
} sluice_gadget_map_info;

/* sluice_gadget__text NUL-terminates a text result of length n in buf. */
static inline int32_t sluice_gadget__text(int32_t n, char *buf, int32_t cap) {
	if (n >= 0 && cap > 0) buf[n < cap ? n : cap - 1] = 0;
	return n;
}

/* The host's message for the last failed call. */
static inline int32_t sluice_gadget_last_error(char *buf, int32_t cap) {
	return sluice_gadget__text(sluice_gadget__last_error(buf, cap > 0 ? cap - 1 : 0), buf, cap);
}

/* A failing hook's message (printf-style); ": <host message>" follows
 * when with_host is non-zero. Returns 1, for `return sluice_gadget_fail(...)`. */
static int sluice_gadget_fail(int with_host, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sluice_gadget_fail(int with_host, const char *fmt, ...) {
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0) n = 0;
	if (n > (int)sizeof msg - 1) n = (int)sizeof msg - 1;
	if (with_host && n < (int)sizeof msg - 3) {
		msg[n++] = ':', msg[n++] = ' ';
		int32_t m = sluice_gadget_last_error(msg + n, (int32_t)sizeof msg - n);
		n += m < (int32_t)sizeof msg - n ? m : (int32_t)sizeof msg - n - 1;
	}
	sluice_gadget__set_error(msg, n);
	return 1;
}

/* ---- parameters (read any time; set in the init hook only) ------------- */

static inline int32_t sluice_gadget_param(const char *name, char *buf, int32_t cap) {
	return sluice_gadget__text(sluice_gadget__param_get(name, (int32_t)strlen(name), buf, cap > 0 ? cap - 1 : 0), buf, cap);
}
static inline int32_t sluice_gadget_set_param(const char *name, const char *value) {
	return sluice_gadget__param_set(name, (int32_t)strlen(name), value, (int32_t)strlen(value));
}
static inline int32_t sluice_gadget_set_param_int(const char *name, int64_t value) {
	char v[24];
	int n = snprintf(v, sizeof v, "%lld", (long long)value);
	return sluice_gadget__param_set(name, (int32_t)strlen(name), v, n);
}

/* ---- maps (from the start hook on) --------------------------------------- */

/* A handle (> 0) to the gadget's map called name. */
static inline int32_t sluice_gadget_map(const char *name) { return sluice_gadget__map_open(name, (int32_t)strlen(name)); }
static inline int32_t sluice_gadget_map_info_of(int32_t map, sluice_gadget_map_info *info) {
	return sluice_gadget__map_info(map, (uint32_t *)info);
}
static inline int32_t sluice_gadget_lookup(int32_t map, const void *key, int32_t key_len, void *value, int32_t value_len) {
	return sluice_gadget__map_lookup(map, key, key_len, value, value_len);
}
static inline int32_t sluice_gadget_update(int32_t map, const void *key, int32_t key_len, const void *value, int32_t value_len, int64_t flags) {
	return sluice_gadget__map_update(map, key, key_len, value, value_len, flags);
}
static inline int32_t sluice_gadget_delete(int32_t map, const void *key, int32_t key_len) {
	return sluice_gadget__map_delete(map, key, key_len);
}
/* The key after key (key NULL: the first); SLUICE_GADGET_ENOTFOUND after the last. */
static inline int32_t sluice_gadget_next_key(int32_t map, const void *key, void *next, int32_t key_len) {
	return sluice_gadget__map_next_key(map, key, key ? key_len : 0, next, key_len);
}

/* ---- kernel symbols and syscalls ---------------------------------------- */

/* The symbol addr falls in, and addr's offset from it (offset may be NULL). */
static inline int32_t sluice_gadget_ksym_name(uint64_t addr, char *buf, int32_t cap, uint64_t *offset) {
	return sluice_gadget__text(sluice_gadget__ksym_name((int64_t)addr, buf, cap > 0 ? cap - 1 : 0, offset), buf, cap);
}
static inline int32_t sluice_gadget_ksym_addr(const char *name, uint64_t *addr) {
	return sluice_gadget__ksym_addr(name, (int32_t)strlen(name), addr);
}
static inline int32_t sluice_gadget_syscall_name(int32_t nr, char *buf, int32_t cap) {
	return sluice_gadget__text(sluice_gadget__syscall_name(nr, buf, cap > 0 ? cap - 1 : 0), buf, cap);
}
/* The syscall's number on the host's architecture. */
static inline int32_t sluice_gadget_syscall_number(const char *name) {
	return sluice_gadget__syscall_number(name, (int32_t)strlen(name));
}

/* ---- exports ------------------------------------------------------------ */

#ifndef SLUICE_H
SLUICE_GADGET__EXPORT("sluice_abi_version") int32_t sluice_gadget__abi_version(void) { return 1; }
#endif
#ifdef SLUICE_GADGET_INIT
static int SLUICE_GADGET_INIT(void);
SLUICE_GADGET__EXPORT("gadget_init") int32_t sluice_gadget__init(void) { return SLUICE_GADGET_INIT(); }
#endif
#ifdef SLUICE_GADGET_START
static int SLUICE_GADGET_START(void);
SLUICE_GADGET__EXPORT("gadget_start") int32_t sluice_gadget__start(void) { return SLUICE_GADGET_START(); }
#endif
#ifdef SLUICE_GADGET_STOP
static int SLUICE_GADGET_STOP(void);
SLUICE_GADGET__EXPORT("gadget_stop") int32_t sluice_gadget__stop(void) { return SLUICE_GADGET_STOP(); }
#endif

#endif /* SLUICE_GADGET_H */
