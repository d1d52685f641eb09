// missing_export.c: has sluice_init but no sluice_process.
#include "guest.h"

EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t n) {
	(void)p, (void)n;
	return 0;
}
