// loop.c: never returns from sluice_process; only the per-batch deadline
// stops it.
#include "guest.h"

EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t n) {
	(void)p, (void)n;
	return 0;
}

EXPORT("sluice_process") int64_t sluice_process(const uint8_t *p, int32_t n) {
	volatile uint64_t spins = 0;
	for (;;) spins++;
	(void)p, (void)n;
	return 0;
}
