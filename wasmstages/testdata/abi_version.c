// abi_version.c: a stage built for ABI version 3, which this host does not
// implement. Otherwise a valid pass-through stage.
#define TEST_ABI_VERSION 3
#include "guest.h"

EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t n) {
	(void)p, (void)n;
	return 0;
}

EXPORT("sluice_process") int64_t sluice_process(const uint8_t *p, int32_t n) {
	(void)n;
	return keep_all(p);
}
