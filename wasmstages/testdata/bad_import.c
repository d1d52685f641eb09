// bad_import.c: imports a host function the ABI does not define.
#include "guest.h"

IMPORT("map_lookup") int32_t sluice_map_lookup(int32_t key);

EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t n) {
	(void)p;
	return sluice_map_lookup(n);
}

EXPORT("sluice_process") int64_t sluice_process(const uint8_t *p, int32_t n) {
	(void)p, (void)n;
	return 0;
}
