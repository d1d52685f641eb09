// abi_version.c: a stage built for ABI version 2, which this host does not
// implement. Otherwise a valid pass-through stage.
#define TEST_ABI_VERSION 2
#include "guest.h"

EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t n) {
	(void)p, (void)n;
	return 0;
}

EXPORT("sluice_process") int64_t sluice_process(const uint8_t *p, int32_t n) {
	uint32_t count = rd32(p);
	out_begin();
	for (uint32_t i = 0; i < count; i++) out_keep(i);
	(void)n;
	return out_end();
}
