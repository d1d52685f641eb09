/* gadget_sdk.c: a gadget module written with the C SDK (sdk/c/sluice.h for
 * the events, sdk/c/sluice_gadget.h for the lifecycle and host functions),
 * checking the headers against the real host (gadget_test.go). Its init
 * derives target_syscall from the param syscall, its start opens the map
 * counts and checks its shape, its filter keeps events whose arg1 is even,
 * and its stop logs how many keys counts has and their sum. */
#define SLUICE_FILTER keep_even
#define SLUICE_GADGET_INIT init
#define SLUICE_GADGET_START start
#define SLUICE_GADGET_STOP stop
#include "../../sdk/c/sluice.h"
#include "../../sdk/c/sluice_gadget.h"

static int32_t counts = -1;

static int init(void) {
	char name[64];
	if (sluice_gadget_param("syscall", name, sizeof name) < 0) return sluice_gadget_fail(1, "param syscall");
	int32_t nr = sluice_gadget_syscall_number(name);
	if (nr < 0) return sluice_gadget_fail(1, "syscall %s", name);
	if (sluice_gadget_set_param_int("target_syscall", nr) != 0) return sluice_gadget_fail(1, "set target_syscall");
	return 0;
}

static int start(void) {
	sluice_gadget_map_info info;
	counts = sluice_gadget_map("counts");
	if (counts < 0) return sluice_gadget_fail(1, "map counts");
	if (sluice_gadget_map_info_of(counts, &info) != 0 || info.key_size != 4 || info.value_size != 8)
		return sluice_gadget_fail(0, "map counts is not u32 -> u64");
	return 0;
}

static bool keep_even(const sluice_event *ev) { return (sluice_get_uint(ev, "arg1", 1) & 1) == 0; }

static int stop(void) {
	uint32_t key, next;
	uint64_t v, sum = 0;
	int keys = 0;
	const void *at = NULL;
	while (sluice_gadget_next_key(counts, at, &next, 4) == 0) {
		if (sluice_gadget_lookup(counts, &next, 4, &v, 8) == 0) keys++, sum += v;
		key = next, at = &key;
	}
	char name[32];
	sluice_gadget_syscall_name(0, name, sizeof name);
	sluice_logf(SLUICE_INFO, "counts: %d keys, sum %llu; syscall 0 is %s", keys, (unsigned long long)sum, name);
	return 0;
}
