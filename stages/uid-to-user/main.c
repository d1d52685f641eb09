/*
 * uid-to-user: enriches events with a user name looked up from a
 * uid -> name table passed in its params (the default config fills it from
 * /etc/passwd with the HCL function passwd_users()):
 *
 *     params = {
 *       users   = passwd_users()   # or { "0" = "root", "1000" = "alice" }
 *       field   = "uid"            # the field holding the uid (default "uid")
 *       target  = "user"           # the field to set (default "user")
 *       unknown = "?"              # set for uids not in the table (default: leave unset)
 *     }
 *
 * Written with the C SDK because the built-in config runs it on every event
 * of every gadget; uid-to-user-go is the same stage with the Go SDK.
 */
#define SLUICE_INIT users_init
#define SLUICE_EVENT users_event
#include "../../sdk/c/sluice.h"

typedef struct {
	uint32_t uid;
	uint32_t len;
	char *name;
} entry;

/* Sorted by uid for a binary search; names are copied out of the params,
 * whose buffer the host reuses. */
static entry *table;
static uint32_t nentries;
static char *field = "uid";
static char *target = "user";
static char *unknown; /* NULL: leave the event unchanged */
static uint32_t unknown_len;
static sluice_counter *missed;
/* field and target, looked up in one scan; one key when they are the same. */
static const char *keys[2];
static sluice_fields fields;

static char *copy_str(sluice_value v, uint32_t *len) {
	const char *s;
	uint32_t n;
	if (!sluice_value_str(v, &s, &n)) return NULL;
	char *c = malloc(n + 1);
	if (!c) return NULL;
	memcpy(c, s, n);
	c[n] = 0;
	if (len) *len = n;
	return c;
}

static int by_uid(const void *a, const void *b) {
	uint32_t x = ((const entry *)a)->uid, y = ((const entry *)b)->uid;
	return x < y ? -1 : x > y;
}

/* parse_uid accepts a decimal uid that fits 32 bits. */
static bool parse_uid(const char *s, uint32_t n, uint32_t *out) {
	if (n == 0 || n > 10) return false;
	uint64_t v = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9') return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > 0xFFFFFFFFu) return false;
	*out = (uint32_t)v;
	return true;
}

static int string_param(sluice_value v, const char *name, char **dst, uint32_t *len) {
	if (!sluice_exists(v) || sluice_type_of(v) == SLUICE_NIL) return 0;
	char *s = copy_str(v, len);
	if (!s) {
		sluice_fail("params.%s: want a string", name);
		return 1;
	}
	*dst = s;
	return 0;
}

static int users_init(sluice_value params) {
	missed = sluice_counter_new("unknown_uid");
	sluice_iter it = sluice_iter_map(params);
	sluice_value k, v;
	while (sluice_next_entry(&it, &k, &v)) {
		if (sluice_value_str_eq(k, "users") || sluice_value_str_eq(k, "field") ||
		    sluice_value_str_eq(k, "target") || sluice_value_str_eq(k, "unknown"))
			continue;
		const char *s = "";
		uint32_t n = 0;
		sluice_value_str(k, &s, &n);
		sluice_fail("params: unknown param \"%.*s\" (known: users, field, target, unknown)", (int)n, s);
		return 1;
	}
	if (string_param(sluice_map_get(params, "field"), "field", &field, NULL) ||
	    string_param(sluice_map_get(params, "target"), "target", &target, NULL) ||
	    string_param(sluice_map_get(params, "unknown"), "unknown", &unknown, &unknown_len))
		return 1;

	sluice_value users = sluice_map_get(params, "users");
	if (!sluice_exists(users)) {
		sluice_fail("params.users: missing; give a uid -> name map, e.g. users = passwd_users()");
		return 1;
	}
	if (sluice_type_of(users) != SLUICE_MAP) {
		sluice_fail("params.users: want a map of uid -> name");
		return 1;
	}
	table = calloc(sluice_value_count(users) + 1, sizeof(entry));
	if (!table) {
		sluice_fail("out of memory");
		return 1;
	}
	it = sluice_iter_map(users);
	while (sluice_next_entry(&it, &k, &v)) {
		const char *s = "";
		uint32_t n = 0;
		entry *e = &table[nentries];
		if (!sluice_value_str(k, &s, &n) || !parse_uid(s, n, &e->uid)) {
			sluice_fail("params.users: key \"%.*s\" is not a uid (a number)", (int)n, s);
			return 1;
		}
		if (!(e->name = copy_str(v, &e->len))) {
			sluice_fail("params.users[\"%.*s\"]: want a name (a string)", (int)n, s);
			return 1;
		}
		nentries++;
	}
	qsort(table, nentries, sizeof(entry), by_uid);
	keys[0] = field, keys[1] = target;
	if (!sluice_fields_init(&fields, keys, strcmp(field, target) == 0 ? 1 : 2)) return 1;
	return 0;
}

static const entry *lookup(uint64_t uid) {
	uint32_t lo = 0, hi = nentries;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (table[mid].uid == uid) return &table[mid];
		if (table[mid].uid < uid) lo = mid + 1;
		else hi = mid;
	}
	return NULL;
}

/* add appends target = name to ev, whose map (well-formed to its end) has
 * no target: the body in one copy, written in place. */
static void add(sluice_out *out, const sluice_event *ev, const char *name, uint32_t len) {
	sluice_iter it = sluice_iter_map(ev->raw);
	uint32_t count = (uint32_t)it.left + 1, tlen = (uint32_t)strlen(target);
	uint32_t body = ev->raw.len - (uint32_t)it.i;
	uint8_t *start = sluice_emit_reserve(out, ev, 5 + body + 5 + tlen + 5 + len);
	if (!start) return; /* out of memory: the call fails with it */
	uint8_t *p = start;
	if (count <= 15) *p++ = (uint8_t)(0x80 | count);
	else if (count <= 0xffff) *p++ = 0xde, *p++ = (uint8_t)(count >> 8), *p++ = (uint8_t)count;
	else *p++ = 0xdf, *p++ = (uint8_t)(count >> 24), *p++ = (uint8_t)(count >> 16), *p++ = (uint8_t)(count >> 8), *p++ = (uint8_t)count;
	memcpy(p, ev->raw.p + it.i, body), p += body;
	for (int k = 0; k < 2; k++) {
		const char *s = k ? name : target;
		uint32_t n = k ? len : tlen;
		if (n <= 31) *p++ = (uint8_t)(0xa0 | n);
		else if (n <= 0xff) *p++ = 0xd9, *p++ = (uint8_t)n;
		else if (n <= 0xffff) *p++ = 0xda, *p++ = (uint8_t)(n >> 8), *p++ = (uint8_t)n;
		else *p++ = 0xdb, *p++ = (uint8_t)(n >> 24), *p++ = (uint8_t)(n >> 16), *p++ = (uint8_t)(n >> 8), *p++ = (uint8_t)n;
		memcpy(p, s, n), p += n;
	}
	sluice_emit_commit(out, (uint32_t)(p - start));
}

/* set replaces the value old (inside ev, whose map is well-formed to its
 * end) with the str name: the entries around it in two copies, the key
 * where it was. */
static void set(sluice_out *out, const sluice_event *ev, sluice_value old, const char *name, uint32_t len) {
	uint32_t head = (uint32_t)(old.p - ev->raw.p), tail = ev->raw.len - head - old.len;
	uint8_t *start = sluice_emit_reserve(out, ev, head + 5 + len + tail);
	if (!start) return; /* out of memory: the call fails with it */
	uint8_t *p = start;
	memcpy(p, ev->raw.p, head), p += head;
	if (len <= 31) *p++ = (uint8_t)(0xa0 | len);
	else if (len <= 0xff) *p++ = 0xd9, *p++ = (uint8_t)len;
	else if (len <= 0xffff) *p++ = 0xda, *p++ = (uint8_t)(len >> 8), *p++ = (uint8_t)len;
	else *p++ = 0xdb, *p++ = (uint8_t)(len >> 24), *p++ = (uint8_t)(len >> 16), *p++ = (uint8_t)(len >> 8), *p++ = (uint8_t)len;
	memcpy(p, name, len), p += len;
	memcpy(p, old.p + old.len, tail), p += tail;
	sluice_emit_commit(out, (uint32_t)(p - start));
}

static void users_event(sluice_event *ev, sluice_out *out) {
	uint64_t uid;
	sluice_value v[2];
	bool whole = sluice_fields_get(&fields, ev, v);
	if (!sluice_value_uint(v[0], &uid)) {
		sluice_keep(out, ev); /* no uid: pass the event on untouched */
		return;
	}
	const char *name = NULL;
	uint32_t len = 0;
	const entry *e = lookup(uid);
	if (e) {
		name = e->name, len = e->len;
	} else {
		sluice_count(missed, 1);
		if (!unknown) {
			sluice_keep(out, ev);
			return;
		}
		name = unknown, len = unknown_len;
	}
	if (whole && fields.n == 2) {
		/* The common cases: a new field, or the decoder's own user
		 * field (the uid's name on the host the gadget ran on). */
		const char *cur;
		uint32_t curlen;
		if (!sluice_exists(v[1])) add(out, ev, name, len);
		else if (sluice_value_str(v[1], &cur, &curlen) && curlen == len && memcmp(cur, name, len) == 0)
			sluice_keep(out, ev); /* it says so already: pass it on as it is */
		else set(out, ev, v[1], name, len);
		return;
	}
	const char *const skip[] = {target};
	sluice_emit_begin(out, ev);
	sluice_w_fields(out, ev, skip, 1);
	sluice_w_key(out, target);
	sluice_w_strn(out, name, len);
	sluice_emit_end(out);
}
