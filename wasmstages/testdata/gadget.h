// gadget.h: the raw gadget-module imports (docs/stage-abi.md, "Gadget
// modules") for the test guests in this directory, beside guest.h's stage
// ABI. Like guest.h it is deliberately not an SDK.
#ifndef SLUICE_TEST_GADGET_H
#define SLUICE_TEST_GADGET_H

#include "guest.h"

#define GIMPORT(name) __attribute__((import_module("sluice_gadget"), import_name(name)))

GIMPORT("param_get") int32_t g_param_get(const char *name, int32_t name_len, char *buf, int32_t cap);
GIMPORT("param_set") int32_t g_param_set(const char *name, int32_t name_len, const char *val, int32_t val_len);
GIMPORT("map_open") int32_t g_map_open(const char *name, int32_t name_len);
GIMPORT("map_info") int32_t g_map_info(int32_t h, uint32_t *info);
GIMPORT("map_lookup") int32_t g_map_lookup(int32_t h, const void *key, int32_t key_len, void *val, int32_t val_len);
GIMPORT("map_update") int32_t g_map_update(int32_t h, const void *key, int32_t key_len, const void *val, int32_t val_len, int64_t flags);
GIMPORT("map_delete") int32_t g_map_delete(int32_t h, const void *key, int32_t key_len);
GIMPORT("map_next_key") int32_t g_map_next_key(int32_t h, const void *key, int32_t key_len, void *next, int32_t next_len);
GIMPORT("ksym_name") int32_t g_ksym_name(int64_t addr, char *buf, int32_t cap, uint64_t *offset);
GIMPORT("ksym_addr") int32_t g_ksym_addr(const char *name, int32_t name_len, uint64_t *addr);
GIMPORT("syscall_name") int32_t g_syscall_name(int32_t nr, char *buf, int32_t cap);
GIMPORT("syscall_number") int32_t g_syscall_number(const char *name, int32_t name_len);
GIMPORT("last_error") int32_t g_last_error(char *buf, int32_t cap);

enum {
	G_ENOTFOUND = -1,
	G_EINVAL = -2,
	G_EPHASE = -3,
	G_EEXIST = -4,
	G_ESYSTEM = -5,
};

// fail sets the guest's error to what, ": ", and the host's last error.
static int32_t fail(const char *what) {
	char msg[512];
	size_t n = strlen(what);
	if (n > 200) n = 200;
	memcpy(msg, what, n);
	memcpy(msg + n, ": ", 2);
	int32_t m = g_last_error(msg + n + 2, (int32_t)(sizeof msg - n - 2));
	if (m > (int32_t)(sizeof msg - n - 2)) m = (int32_t)(sizeof msg - n - 2);
	sluice_set_error(msg, (int32_t)n + 2 + m);
	return 1;
}

static int32_t map_open_str(const char *name) { return g_map_open(name, (int32_t)strlen(name)); }

// mp_u64 reads a non-negative msgpack integer of any width.
static int mp_u64(const uint8_t *p, size_t n, uint64_t *v) {
	if (n < 1) return 0;
	uint8_t c = p[0];
	if (c <= 0x7f) return *v = c, 1;
	int w = 0;
	switch (c) {
	case 0xcc: w = 1; break;
	case 0xcd: w = 2; break;
	case 0xce: w = 4; break;
	case 0xcf: w = 8; break;
	default: return 0;
	}
	if (n < (size_t)1 + w) return 0;
	*v = mp_be(p + 1, w);
	return 1;
}

static size_t put_str(uint8_t *p, const char *s, size_t n) {
	if (n < 32) {
		p[0] = (uint8_t)(0xa0 | n);
		memcpy(p + 1, s, n);
		return 1 + n;
	}
	p[0] = 0xd9, p[1] = (uint8_t)n;
	memcpy(p + 2, s, n);
	return 2 + n;
}

static size_t put_u64(uint8_t *p, uint64_t v) {
	p[0] = 0xcf;
	for (int i = 0; i < 8; i++) p[1 + i] = (uint8_t)(v >> (56 - 8 * i));
	return 9;
}

#endif
