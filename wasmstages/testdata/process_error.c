// process_error.c: fails every batch the proper way: a message through
// set_error and a negative result.
#include "guest.h"

EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t n) {
	(void)p, (void)n;
	return 0;
}

EXPORT("sluice_process") int64_t sluice_process(const uint8_t *p, int32_t n) {
	(void)p, (void)n;
	set_error_str("lookup table is not loaded");
	return -1;
}
