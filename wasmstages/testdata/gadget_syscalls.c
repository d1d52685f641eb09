// gadget_syscalls.c: the module of the test gadget
// gadgets/testdata/wasm_syscalls.bpf.c, against the raw gadget-module ABI.
//
// gadget_init turns the param "syscall" (a name) into "target_syscall" (its
// number, which the eBPF program filters on in the kernel).
// gadget_start writes a tag into the map "config" (the program copies it
// into every event), checks update/lookup/delete semantics on "counts",
// and checks that param_set is refused now that the gadget is loaded.
// sluice_process drops events whose arg1 is odd and adds to the others
// syscall_name (from nr), kernel_count (counts[nr], which the program
// increments) and kaddr_sym (the kernel symbol kaddr falls in, as
// name+0xoffset). gadget_stop iterates "counts" into the guest counters
// count_keys and count_total.
//
// Built with -DTRAP_WHO=N it traps on an event whose arg1 is N.
#include "gadget.h"

#define TAG 0x5eed5eedULL

static int32_t counts_map = -1;

EXPORT("gadget_init") int32_t gadget_init(void) {
	char name[64];
	int32_t n = g_param_get("syscall", 7, name, sizeof name);
	if (n < 0) return fail("gadget_init: param_get(syscall)");
	if (n == 0) return 0; // trace every syscall
	if (n > (int32_t)sizeof name) {
		set_error_str("gadget_init: param syscall is too long");
		return 1;
	}
	int32_t nr = g_syscall_number(name, n);
	if (nr < 0) return fail("gadget_init: syscall_number");
	char num[16];
	int len = 0;
	char rev[16];
	do rev[len++] = (char)('0' + nr % 10), nr /= 10;
	while (nr > 0);
	for (int i = 0; i < len; i++) num[i] = rev[len - 1 - i];
	if (g_param_set("target_syscall", 14, num, len) != 0) return fail("gadget_init: param_set(target_syscall)");
	log_str(1, "gadget_init: target_syscall set");
	return 0;
}

EXPORT("gadget_start") int32_t gadget_start(void) {
	int32_t config = map_open_str("config");
	if (config < 0) return fail("gadget_start: map_open(config)");
	uint32_t info[4];
	if (g_map_info(config, info) != 0) return fail("gadget_start: map_info(config)");
	if (info[1] != 4 || info[2] != 8) {
		set_error_str("gadget_start: map config is not u32 -> u64");
		return 1;
	}
	uint32_t zero = 0;
	uint64_t tag = TAG, got = 0;
	if (g_map_update(config, &zero, 4, &tag, 8, 0) != 0) return fail("gadget_start: map_update(config)");
	if (g_map_lookup(config, &zero, 4, &got, 8) != 0 || got != TAG) return fail("gadget_start: map_lookup(config) after update");

	counts_map = map_open_str("counts");
	if (counts_map < 0) return fail("gadget_start: map_open(counts)");
	uint32_t probe = 0xFFFFFFFFu;
	uint64_t one = 1;
	if (g_map_update(counts_map, &probe, 4, &one, 8, 1 /* BPF_NOEXIST */) != 0) return fail("gadget_start: map_update(counts, NOEXIST)");
	if (g_map_update(counts_map, &probe, 4, &one, 8, 1) != G_EEXIST) {
		set_error_str("gadget_start: a second NOEXIST update of the same key did not fail with EEXIST");
		return 1;
	}
	if (g_map_delete(counts_map, &probe, 4) != 0) return fail("gadget_start: map_delete(counts)");
	if (g_map_lookup(counts_map, &probe, 4, &got, 8) != G_ENOTFOUND) {
		set_error_str("gadget_start: a deleted key was still found");
		return 1;
	}
	if (g_map_lookup(counts_map, &probe, 3, &got, 8) != G_EINVAL) {
		set_error_str("gadget_start: a 3-byte key was not refused");
		return 1;
	}
	if (g_param_set("target_syscall", 14, "0", 1) != G_EPHASE) {
		set_error_str("gadget_start: param_set after load was not refused");
		return 1;
	}
	return 0;
}

// find_key points *v at the value of key in the event map at p.
static int find_key(const uint8_t *p, size_t n, const char *key, const uint8_t **v, size_t *vn) {
	return mp_lookup(p, n, key, v, vn);
}

EXPORT("sluice_process") int64_t sluice_process(const uint8_t *batch, int32_t len) {
	out_begin();
	uint32_t count = rd32(batch);
	size_t off = 4;
	static uint8_t ev[4096];
	for (uint32_t i = 0; i < count; i++) {
		uint32_t n = rd32(batch + off);
		const uint8_t *e = batch + off + 4;
		off += 4 + n;
		(void)len;
		const uint8_t *v;
		size_t vn;
		uint64_t who = 0, nr = 0, kaddr = 0;
		if (find_key(e, n, "arg1", &v, &vn)) mp_u64(v, vn, &who);
#ifdef TRAP_WHO
		if (who == TRAP_WHO) __builtin_trap();
#endif
		if (who & 1) continue; // dropped
		if (find_key(e, n, "nr", &v, &vn)) mp_u64(v, vn, &nr);
		if (find_key(e, n, "kaddr", &v, &vn)) mp_u64(v, vn, &kaddr);

		// The event with three more keys: a map16 header, the old body,
		// then the new pairs.
		uint32_t keys;
		int64_t h = mp_container(e, n, 1, &keys);
		if (h < 0 || n + 256 > sizeof ev) {
			out_keep(i);
			continue;
		}
		size_t w = 0;
		ev[w++] = 0xde, ev[w++] = (uint8_t)((keys + 3) >> 8), ev[w++] = (uint8_t)(keys + 3);
		memcpy(ev + w, e + h, n - (size_t)h);
		w += n - (size_t)h;

		char name[64];
		int32_t sn = g_syscall_name((int32_t)nr, name, sizeof name);
		if (sn < 0 || sn > (int32_t)sizeof name) sn = 0;
		w += put_str(ev + w, "syscall_name", 12);
		w += put_str(ev + w, name, (size_t)sn);

		uint32_t key = (uint32_t)nr;
		uint64_t kcount = 0;
		g_map_lookup(counts_map, &key, 4, &kcount, 8); // 0 when missing
		w += put_str(ev + w, "kernel_count", 12);
		w += put_u64(ev + w, kcount);

		char sym[128];
		uint64_t symoff = 0;
		int32_t kn = g_ksym_name((int64_t)kaddr, sym, 100, &symoff);
		if (kn < 0) kn = 0;
		if (kn > 100) kn = 100;
		if (kn > 0) {
			// name+0xoffset
			static const char hex[] = "0123456789abcdef";
			sym[kn++] = '+', sym[kn++] = '0', sym[kn++] = 'x';
			char rev[16];
			int r = 0;
			do rev[r++] = hex[symoff & 15], symoff >>= 4;
			while (symoff);
			while (r) sym[kn++] = rev[--r];
		}
		w += put_str(ev + w, "kaddr_sym", 9);
		w += put_str(ev + w, sym, (size_t)kn);
		out_emit(i, ev, (uint32_t)w);
	}
	return out_end();
}

EXPORT("gadget_stop") int32_t gadget_stop(void) {
	if (counts_map < 0) return 0;
	uint32_t key, next;
	int have = 0;
	int64_t keys = 0, total = 0;
	for (int guard = 0; guard < 100000; guard++) {
		int32_t rc = have ? g_map_next_key(counts_map, &key, 4, &next, 4) : g_map_next_key(counts_map, 0, 0, &next, 4);
		if (rc == G_ENOTFOUND) break;
		if (rc != 0) return fail("gadget_stop: map_next_key(counts)");
		uint64_t v;
		if (g_map_lookup(counts_map, &next, 4, &v, 8) == 0) keys++, total += (int64_t)v;
		key = next, have = 1;
	}
	counter_add_str("count_keys", keys);
	counter_add_str("count_total", total);
	return 0;
}
