/* A test guest of the C SDK: params "n" (a whole number, int or float) names
 * the seq that is kept; seq 3 gets comm and a list set (sluice_set_begin),
 * seq 4 comm = "ls" (sluice_set_str); every other event is emitted with comm
 * replaced and a 20-element list added, except seq 99, which asks
 * sluice_w_fields to leave out more names than it takes (the batch fails).
 * Every event's fields are also read from the host's find_keys rows
 * (SLUICE_FIND_KEYS) and by a scan: a batch where they differ, or of 4 or
 * more events without rows, fails.
 * stages/stages_test.go runs it through the real host. Rebuilt by
 * stages/build.sh. */
#define SLUICE_INIT t_init
#define SLUICE_EVENT t_event
#define SLUICE_FIND_KEYS
#include "../sluice.h"
static int64_t want;
static const char *const keys[] = {"comm", "pid", "seq", "absent", "host"};
static sluice_fields fields;
static int t_init(sluice_value p) {
	if (!sluice_fields_init(&fields, keys, 5)) return 1;
	if (!sluice_value_int(sluice_map_get(p, "n"), &want)) { sluice_fail("params.n: want a whole number"); return 1; }
	return 0;
}
/* same_fields checks the host's answer for ev against a scan. */
static bool same_fields(const sluice_event *ev) {
	sluice_value got[5], scan[5], scratch[5];
	uint32_t found;
	bool whole = sluice__fields_scan(&fields, ev, scan, false, &found);
	if (sluice__batch_count >= SLUICE_FIND_KEYS_MIN && !sluice__fields_row(&fields, ev)) return false;
	if (sluice_fields_get(&fields, ev, got) != whole) return false;
	const sluice_value *v = sluice_fields_values(&fields, ev, scratch);
	bool w;
	if (sluice_fields_find(&fields, ev, scratch, &w) != found || w != (found < 5 && whole)) return false;
	for (int k = 0; k < 5; k++)
		if (got[k].len != scan[k].len || v[k].len != scan[k].len || (scan[k].len && (got[k].p != scan[k].p || v[k].p != scan[k].p)))
			return false;
	return true;
}
static void t_event(sluice_event *ev, sluice_out *out) {
	static const char *const skip[] = {"comm"};
	if (!same_fields(ev)) { sluice_fail("event %u: the host's fields differ from a scan's", ev->index); return; }
	int64_t seq = sluice_get_int(ev, "seq", 0);
	if (seq == want) { sluice_keep(out, ev); return; }
	if (seq == 3) {
		sluice_set_begin(out, ev);
		sluice_w_key(out, "comm"); sluice_w_str(out, "SET");
		sluice_w_key(out, "tags"); sluice_w_array(out); sluice_w_int(out, 1); sluice_w_int(out, 2); sluice_w_end(out);
		sluice_set_end(out);
		return;
	}
	if (seq == 4) { sluice_set_str(out, ev, "comm", "ls", 2); return; }
	static const char *const many[SLUICE_MAX_SKIP + 1] = {"comm"};
	sluice_emit_begin(out, ev);
	if (sluice_get_int(ev, "seq", 0) == 99) { sluice_w_fields(out, ev, many, SLUICE_MAX_SKIP + 1); return; }
	sluice_w_fields(out, ev, skip, 1);
	sluice_w_key(out, "comm"); sluice_w_str(out, "CHANGED");
	sluice_w_key(out, "list"); sluice_w_array(out); for (int i = 0; i < 20; i++) sluice_w_int(out, -i); sluice_w_end(out);
	sluice_emit_end(out);
}
