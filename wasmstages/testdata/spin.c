// spin.c: spends a fixed amount of work on each batch (params
// {"spins": N} loop iterations) and keeps every event: a slow but finite
// stage, for the deadline's handling of a starved call.
#include "guest.h"

static uint64_t spins;

EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t n) {
	const uint8_t *v;
	size_t vn;
	if (!mp_lookup(p, (size_t)n, "spins", &v, &vn) || mp_uint(v, vn) < 0) {
		set_error_str("params: want spins, a count of loop iterations");
		return -1;
	}
	spins = (uint64_t)mp_uint(v, vn);
	return 0;
}

EXPORT("sluice_process") int64_t sluice_process(const uint8_t *p, int32_t n) {
	volatile uint64_t done = 0;
	for (uint64_t i = 0; i < spins; i++) done++;
	(void)n;
	return keep_all(p);
}
