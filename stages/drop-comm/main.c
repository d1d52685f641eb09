/*
 * drop-comm: drops events whose comm is one of the names in the param
 * comms (a list of strings). Written with the C SDK (sdk/c/sluice.h): it is
 * the built-in filter for the hot path, where a C guest costs a fraction of
 * a Go one. The host finds comm in the whole batch at once (find_key, see
 * SLUICE_FIND_KEY in sluice.h): comm is an exec event's fifteenth field,
 * and stepping over fourteen costs the guest more than the rest of the
 * filter.
 *
 *     params = { comms = ["sshd", "systemd-journal"] }
 */
#define SLUICE_INIT drop_init
#define SLUICE_FILTER drop_filter
#define SLUICE_FIND_KEY "comm"
#include "../../sdk/c/sluice.h"

#define MAX_COMMS 256

/* The names, copied out of the params (whose buffer the host reuses). */
static struct {
	char *name;
	uint32_t len;
} comms[MAX_COMMS];
static int ncomms;
static sluice_counter *dropped;

static int drop_init(sluice_value params) {
	dropped = sluice_counter_new("dropped");
	sluice_value list = sluice_map_get(params, "comms");
	if (!sluice_exists(list)) {
		sluice_fail("params.comms: missing; give the names to drop, e.g. comms = [\"sshd\"]");
		return 1;
	}
	if (sluice_type_of(list) != SLUICE_ARRAY) {
		sluice_fail("params.comms: want a list of strings");
		return 1;
	}
	sluice_iter it = sluice_iter_map(params);
	sluice_value k, v;
	while (sluice_next_entry(&it, &k, &v)) {
		if (!sluice_value_str_eq(k, "comms")) {
			const char *s = "";
			uint32_t n = 0;
			sluice_value_str(k, &s, &n);
			sluice_fail("params: unknown param \"%.*s\" (known: comms)", (int)n, s);
			return 1;
		}
	}
	it = sluice_iter_array(list);
	sluice_value el;
	for (int i = 0; sluice_next(&it, &el); i++) {
		const char *s;
		uint32_t n;
		if (!sluice_value_str(el, &s, &n)) {
			sluice_fail("params.comms[%d]: want a string", i);
			return 1;
		}
		if (n == 0) {
			sluice_fail("params.comms[%d]: an empty name matches nothing; remove it", i);
			return 1;
		}
		if (ncomms == MAX_COMMS) {
			sluice_fail("params.comms: more than %d names", MAX_COMMS);
			return 1;
		}
		comms[ncomms].name = malloc(n);
		if (!comms[ncomms].name) {
			sluice_fail("out of memory");
			return 1;
		}
		memcpy(comms[ncomms].name, s, n);
		comms[ncomms++].len = n;
	}
	return 0;
}

static bool drop_filter(const sluice_event *ev) {
	const char *s;
	uint32_t n;
	if (!sluice_value_str(sluice_found(ev), &s, &n)) return true;
	for (int i = 0; i < ncomms; i++) {
		if (comms[i].len != n) continue;
		/* In line: memcmp is a call into libc's byte loop. */
		const char *name = comms[i].name;
		uint32_t k = 0;
		while (k < n && name[k] == s[k]) k++;
		if (k == n) {
			sluice_count(dropped, 1);
			return false;
		}
	}
	return true;
}
