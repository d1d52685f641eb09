// trap.c: traps (unreachable) in sluice_process once it has seen "trap_after"
// batches (param, default 0: the first batch traps).
#include "guest.h"

static int64_t trap_after, batches;

EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t n) {
	const uint8_t *v;
	size_t vn;
	if (mp_lookup(p, (size_t)n, "trap_after", &v, &vn)) trap_after = mp_uint(v, vn);
	return 0;
}

EXPORT("sluice_process") int64_t sluice_process(const uint8_t *p, int32_t n) {
	if (batches++ >= trap_after) __builtin_trap();
	(void)n;
	return keep_all(p);
}
