// bomb.c: allocates and touches 1 MiB blocks in sluice_process until malloc
// fails (the host refused to grow the memory), then traps, as a guest
// without error handling would.
#include "guest.h"

EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t n) {
	(void)p, (void)n;
	return 0;
}

// The blocks are chained from a global so that the compiler cannot elide
// the allocations.
static void *volatile blocks;

EXPORT("sluice_process") int64_t sluice_process(const uint8_t *p, int32_t n) {
	for (;;) {
		char *b = malloc(1 << 20);
		if (!b) __builtin_trap();
		memset(b, 0xab, 1 << 20);
		*(void **)b = blocks;
		blocks = b;
	}
	(void)p, (void)n;
	return 0;
}
