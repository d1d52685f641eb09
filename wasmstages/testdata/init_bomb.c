// init_bomb.c: builds a 16 MiB table in sluice_init, as a stage that loads
// a large lookup table at start would, so that under a smaller memory
// limit its start fails: the host refuses to grow the memory and malloc
// returns NULL. init_bomb.wasm then reports the failure as a guest with
// error handling does; init_bomb_trap.wasm (-DTRAP_ON_OOM) traps, as a
// guest without it does.
#include "guest.h"

#define TABLE_SIZE (16 << 20)

// Kept in a global so that the compiler cannot elide the allocation.
static char *volatile table;

EXPORT("sluice_init") int32_t sluice_init(const uint8_t *p, int32_t n) {
	(void)p, (void)n;
	table = malloc(TABLE_SIZE);
	if (!table) {
#ifdef TRAP_ON_OOM
		__builtin_trap();
#else
		set_error_str("cannot allocate the 16 MiB table");
		return 1;
#endif
	}
	memset(table, 0xab, TABLE_SIZE);
	return 0;
}

// Every event is kept: under a large enough limit the module works.
EXPORT("sluice_process") int64_t sluice_process(const uint8_t *p, int32_t n) {
	(void)n;
	return keep_all(p);
}
