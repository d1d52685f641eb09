// init_fail.c: rejects its params, as a stage given a wrong config would.
#include "guest.h"

EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t n) {
	(void)p, (void)n;
	set_error_str("param \"threshold\" is required");
	return 1;
}

EXPORT("sluice_process") int64_t sluice_process(const uint8_t *p, int32_t n) {
	(void)p, (void)n;
	__builtin_trap();
}
