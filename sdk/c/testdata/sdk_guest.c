/* A test guest of the C SDK: params "n" (a whole number, int or float) names
 * the seq that is kept; every other event is emitted with comm replaced and a
 * 20-element list added, except seq 99, which asks sluice_w_fields to leave
 * out more names than it takes (the batch fails). stages/stages_test.go
 * runs it through the real host. Rebuilt by stages/build.sh. */
#define SLUICE_INIT t_init
#define SLUICE_EVENT t_event
#include "../sluice.h"
static int64_t want;
static int t_init(sluice_value p) {
	if (!sluice_value_int(sluice_map_get(p, "n"), &want)) { sluice_fail("params.n: want a whole number"); return 1; }
	return 0;
}
static void t_event(sluice_event *ev, sluice_out *out) {
	static const char *const skip[] = {"comm"};
	if (sluice_get_int(ev, "seq", 0) == want) { sluice_keep(out, ev); return; }
	static const char *const many[SLUICE_MAX_SKIP + 1] = {"comm"};
	sluice_emit_begin(out, ev);
	if (sluice_get_int(ev, "seq", 0) == 99) { sluice_w_fields(out, ev, many, SLUICE_MAX_SKIP + 1); return; }
	sluice_w_fields(out, ev, skip, 1);
	sluice_w_key(out, "comm"); sluice_w_str(out, "CHANGED");
	sluice_w_key(out, "list"); sluice_w_array(out); for (int i = 0; i < 20; i++) sluice_w_int(out, -i); sluice_w_end(out);
	sluice_emit_end(out);
}
