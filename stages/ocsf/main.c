/*
 * ocsf: maps sluice's built-in gadget events to the Open Cybersecurity
 * Schema Framework (OCSF 1.1) for SIEM ingestion:
 *
 *     trace_exec       -> Process Activity (class 1007), Launch
 *     trace_open       -> File System Activity (class 1001), Open
 *     trace_tcpconnect -> Network Activity (class 4001), Open
 *
 * Each mapped event replaces its input (same source and sequence number).
 * Fields OCSF has no place for go under unmapped. Events of other gadgets
 * pass on unchanged, or are dropped with others = "drop".
 *
 *     params = {
 *       others   = "pass"   # or "drop"
 *       envelope = true     # keep host, source, gadget and seq at the top
 *                           # level too, for subject templates; false for
 *                           # strict OCSF
 *     }
 *
 * Written with the C SDK because it sits in front of every SIEM: it indexes
 * each event once and writes the mapped event in one pass. ocsf-go is the
 * same stage with the Go SDK; the parity test holds both to the same
 * output.
 */
#define SLUICE_INIT ocsf_init
#define SLUICE_EVENT ocsf_event
/* The host finds the fields the mapping reads (find_keys): its scan of an
 * exec event's 19 entries costs a fraction of the guest's. */
#define SLUICE_FIND_KEYS
#include "../../sdk/c/sluice.h"

static bool drop_others;
static bool envelope = true;
static sluice_counter *mapped;
/* The fields the mapping reads, looked up in one scan per event. */
enum {
	F_ARGS,
	F_COMM,
	F_DADDR,
	F_DPORT,
	F_FAMILY,
	F_FILENAME,
	F_FLAGS,
	F_GADGET,
	F_GID,
	F_GID_NAME,
	F_HOST,
	F_MNTNS_ID,
	F_MODE,
	F_PATH,
	F_PID,
	F_PPID,
	F_RET,
	F_RET_ERROR,
	F_SADDR,
	F_SEQ,
	F_SOURCE,
	F_SPORT,
	F_TIME,
	F_UID,
	F_USER,
	F_N
};
static const char *const field_keys[F_N] = {
	[F_ARGS] = "args",
	[F_COMM] = "comm",
	[F_DADDR] = "daddr.addr",
	[F_DPORT] = "dport",
	[F_FAMILY] = "family",
	[F_FILENAME] = "filename",
	[F_FLAGS] = "flags",
	[F_GADGET] = "gadget",
	[F_GID] = "gid",
	[F_GID_NAME] = "gid_name",
	[F_HOST] = "host",
	[F_MNTNS_ID] = "mntns_id",
	[F_MODE] = "mode",
	[F_PATH] = "path",
	[F_PID] = "pid",
	[F_PPID] = "ppid",
	[F_RET] = "ret",
	[F_RET_ERROR] = "ret_error",
	[F_SADDR] = "saddr.addr",
	[F_SEQ] = "seq",
	[F_SOURCE] = "source",
	[F_SPORT] = "sport",
	[F_TIME] = "time",
	[F_UID] = "uid",
	[F_USER] = "user",
};
static sluice_fields fields;
static const sluice_value *fv; /* the event's values: the host's row, or fv_scan */
static sluice_value fv_scan[F_N];

typedef struct {
	int64_t class_uid, category_uid, activity_id;
	const char *class_name, *category_name, *activity, *type_name;
} ocsf_class;

static const ocsf_class process_launch = {1007, 1, 1, "Process Activity", "System Activity", "Launch", "Process Activity: Launch"};
static const ocsf_class file_open = {1001, 1, 14, "File System Activity", "System Activity", "Open", "File System Activity: Open"};
static const ocsf_class network_open = {4001, 4, 1, "Network Activity", "Network Activity", "Open", "Network Activity: Open"};

static const char *type_name(sluice_value v) {
	switch (sluice_type_of(v)) {
	case SLUICE_NIL: return "nil";
	case SLUICE_BOOL: return "bool";
	case SLUICE_INT: return "int";
	case SLUICE_FLOAT: return "float";
	case SLUICE_STR: return "string";
	case SLUICE_BIN: return "bytes";
	case SLUICE_ARRAY: return "array";
	case SLUICE_MAP: return "map";
	default: return "ext";
	}
}

static void build_blobs(void);
static bool blobs_overflowed; /* set by build_blobs */

static int ocsf_init(sluice_value params) {
	mapped = sluice_counter_new("mapped");
	if (!sluice_fields_init(&fields, field_keys, F_N)) return 1;
	build_blobs();
	if (blobs_overflowed) {
		sluice_fail("ocsf: a constant run outgrew its blob (a bug in stages/ocsf/main.c)");
		return 1;
	}
	sluice_iter it = sluice_iter_map(params);
	sluice_value k, v;
	while (sluice_next_entry(&it, &k, &v)) {
		const char *s = "";
		uint32_t n = 0;
		sluice_value_str(k, &s, &n);
		if (sluice_value_str_eq(k, "others")) {
			if (sluice_type_of(v) == SLUICE_NIL) continue;
			const char *o;
			uint32_t on;
			if (!sluice_value_str(v, &o, &on)) {
				sluice_fail("params.others: want a string, got %s", type_name(v));
				return 1;
			}
			if (on == 4 && memcmp(o, "drop", 4) == 0) drop_others = true;
			else if (!(on == 0 || (on == 4 && memcmp(o, "pass", 4) == 0))) {
				sluice_fail("params.others: \"%.*s\"; want \"pass\" or \"drop\"", (int)on, o);
				return 1;
			}
		} else if (sluice_value_str_eq(k, "envelope")) {
			if (sluice_type_of(v) == SLUICE_NIL) continue;
			if (!sluice_value_bool(v, &envelope)) {
				sluice_fail("params.envelope: want a bool, got %s", type_name(v));
				return 1;
			}
		} else {
			sluice_fail("params: unknown param \"%.*s\" (known: others, envelope)", (int)n, s);
			return 1;
		}
	}
	return 0;
}

/* Integers as the Go SDK reads them: no whole floats (sluice_value_int
 * takes those, for params). */
static bool int_of(sluice_value v, int64_t *n) { return sluice_type_of(v) == SLUICE_INT && sluice_value_int(v, n); }
static bool uint_of(sluice_value v, uint64_t *n) { return sluice_type_of(v) == SLUICE_INT && sluice_value_uint(v, n); }

/* str_of is the payload of a str (or bin) field, or an empty one. */
static void str_of(sluice_value v, const char **s, uint32_t *n) {
	if (!sluice_value_str(v, s, n)) *s = "", *n = 0;
}

/* The mapped event is written in place (sluice_emit_reserve) through a
 * cursor that the compiler keeps in a register: room for the whole event
 * is reserved once, so no write checks for it. Every field of the input
 * is copied at most three times (host: device, envelope, metadata.uid), so
 * 4 x the input plus the constant text is enough; ocsf_event checks it. */
typedef struct {
	uint8_t *p;
} cursor;

/* A map being written: its header (one byte for a fixmap, three for the
 * top level's map16) and its entries so far. */
typedef struct {
	uint8_t *at;
	uint32_t n;
} map;

/* put copies up to 16 bytes with fixed-size moves (two that may overlap,
 * reading only the n source bytes): memory.copy is a call out of the
 * module's code, and most values are short. */
SLUICE__INLINE void put(cursor *w, const void *src, uint32_t n) {
	const uint8_t *s = src;
	uint8_t *d = w->p;
	if (n >= 8 && n <= 16) {
		uint64_t a, b;
		memcpy(&a, s, 8), memcpy(&b, s + n - 8, 8);
		memcpy(d, &a, 8), memcpy(d + n - 8, &b, 8);
	} else if (n >= 4 && n < 8) {
		uint32_t a, b;
		memcpy(&a, s, 4), memcpy(&b, s + n - 4, 4);
		memcpy(d, &a, 4), memcpy(d + n - 4, &b, 4);
	} else if (n < 4) {
		if (n > 0) d[0] = s[0], d[n / 2] = s[n / 2], d[n - 1] = s[n - 1];
	} else memcpy(d, s, n);
	w->p += n;
}
SLUICE__INLINE void put_strhdr(cursor *w, uint32_t n) {
	if (n <= 31) *w->p++ = (uint8_t)(0xa0 | n);
	else if (n <= 0xff) *w->p++ = 0xd9, *w->p++ = (uint8_t)n;
	else if (n <= 0xffff) *w->p++ = 0xda, *w->p++ = (uint8_t)(n >> 8), *w->p++ = (uint8_t)n;
	else *w->p++ = 0xdb, *w->p++ = (uint8_t)(n >> 24), *w->p++ = (uint8_t)(n >> 16), *w->p++ = (uint8_t)(n >> 8), *w->p++ = (uint8_t)n;
}
SLUICE__INLINE void put_str(cursor *w, const char *s, uint32_t n) { put_strhdr(w, n), put(w, s, n); }
/* put_uint and put_int take and return the cursor's position, so that it
 * stays in a register in the functions that call them. */
static uint8_t *put_uint_at(uint8_t *p, uint64_t v) {
	if (v <= 0x7f) *p++ = (uint8_t)v;
	else if (v <= 0xff) *p++ = 0xcc, *p++ = (uint8_t)v;
	else if (v <= 0xffff) *p++ = 0xcd, *p++ = (uint8_t)(v >> 8), *p++ = (uint8_t)v;
	else if (v <= 0xffffffffu) {
		*p++ = 0xce;
		for (int i = 3; i >= 0; i--) *p++ = (uint8_t)(v >> (8 * i));
	} else {
		*p++ = 0xcf;
		for (int i = 7; i >= 0; i--) *p++ = (uint8_t)(v >> (8 * i));
	}
	return p;
}
static uint8_t *put_int_at(uint8_t *p, int64_t v) {
	if (v >= 0) return put_uint_at(p, (uint64_t)v);
	if (v >= -32) *p++ = (uint8_t)v;
	else if (v >= INT8_MIN) *p++ = 0xd0, *p++ = (uint8_t)v;
	else if (v >= INT16_MIN) *p++ = 0xd1, *p++ = (uint8_t)(v >> 8), *p++ = (uint8_t)v;
	else if (v >= INT32_MIN) {
		*p++ = 0xd2;
		for (int i = 3; i >= 0; i--) *p++ = (uint8_t)((uint64_t)v >> (8 * i));
	} else {
		*p++ = 0xd3;
		for (int i = 7; i >= 0; i--) *p++ = (uint8_t)((uint64_t)v >> (8 * i));
	}
	return p;
}
/* Small numbers (the constants of a class, pids) in line. */
SLUICE__INLINE void put_uint(cursor *w, uint64_t v) {
	if (v <= 0x7f) *w->p++ = (uint8_t)v;
	else w->p = put_uint_at(w->p, v);
}
SLUICE__INLINE void put_int(cursor *w, int64_t v) {
	if (v >= 0 && v <= 0x7f) *w->p++ = (uint8_t)v;
	else w->p = put_int_at(w->p, v);
}
/* eq compares n bytes in line (memcmp is a call into libc). */
SLUICE__INLINE bool eq(const char *a, const char *b, uint32_t n) {
	for (uint32_t i = 0; i < n; i++)
		if (a[i] != b[i]) return false;
	return true;
}
/* put_raw copies an encoded value; a missing one is written as nil. */
SLUICE__INLINE void put_raw(cursor *w, sluice_value v) {
	if (!v.len) *w->p++ = 0xc0;
	else put(w, v.p, v.len);
}
SLUICE__INLINE void key(cursor *w, map *m, const char *k) {
	m->n++;
	put_str(w, k, (uint32_t)strlen(k));
}
SLUICE__INLINE map begin(cursor *w) {
	map m = {w->p, 0};
	w->p++;
	return m;
}
/* end closes a nested map; none has more than 15 entries. */
SLUICE__INLINE void end(map m) { *m.at = (uint8_t)(0x80 | m.n); }

SLUICE__INLINE void kv_int(cursor *w, map *m, const char *k, int64_t v) { key(w, m, k), put_int(w, v); }
SLUICE__INLINE void kv_str(cursor *w, map *m, const char *k, const char *v) { key(w, m, k), put_str(w, v, (uint32_t)strlen(v)); }
SLUICE__INLINE void kv_field(cursor *w, map *m, const char *k, int field) { key(w, m, k), put_raw(w, fv[field]); }

/* Runs of the output that are the same in every event (the class's ten
 * constant entries, metadata's product, the keys that open a nested map)
 * are written once, at init, into blobs, and copied whole per event: in
 * Wasm each key or value written costs ~10 ns, one copy of a run of them
 * a fraction of that. */
typedef struct {
	uint8_t b[240];
	uint8_t n;       /* bytes */
	uint8_t entries; /* entries of the enclosing map it adds */
} blob;

/* put_blob copies a blob: in line up to 32 bytes, memory.copy beyond. */
SLUICE__INLINE void put_blob(cursor *w, map *m, const blob *bl) {
	uint32_t n = bl->n;
	if (n <= 16) put(w, bl->b, n);
	else if (n <= 32) {
		uint64_t a, b, c, d;
		memcpy(&a, bl->b, 8), memcpy(&b, bl->b + 8, 8), memcpy(&c, bl->b + n - 16, 8), memcpy(&d, bl->b + n - 8, 8);
		memcpy(w->p, &a, 8), memcpy(w->p + 8, &b, 8), memcpy(w->p + n - 16, &c, 8), memcpy(w->p + n - 8, &d, 8);
		w->p += n;
	} else memcpy(w->p, bl->b, n), w->p += n;
	m->n += bl->entries;
}

/* blob_begin and blob_end write a blob with the helpers that write
 * events. */
SLUICE__INLINE cursor blob_begin(blob *bl) {
	cursor w = {bl->b};
	return w;
}
SLUICE__INLINE void blob_end(blob *bl, cursor w, map m) {
	/* The blobs are constants: one that outgrew its buffer is a bug in
	 * this file, which init reports. */
	if (w.p - bl->b > (ptrdiff_t)sizeof bl->b) blobs_overflowed = true;
	bl->n = (uint8_t)(w.p - bl->b);
	bl->entries = (uint8_t)m.n;
}

/* put_digits writes v in decimal. Values that fit 32 bits (uids, seqs)
 * divide by 10 as a multiplication: Wasm engines run i64.div as the CPU's
 * divide, tens of cycles a digit. */
static char *put_digits(char *p, uint64_t v) {
	char tmp[20];
	int n = 0;
	while (v > 0xffffffffu) tmp[n++] = (char)('0' + v % 10), v /= 10;
	uint32_t u = (uint32_t)v;
	do {
		uint32_t q = (uint32_t)((uint64_t)u * 0xCCCCCCCDu >> 35); /* u / 10, exact for every u32 */
		tmp[n++] = (char)('0' + (u - q * 10));
		u = q;
	} while (u);
	while (n) *p++ = tmp[--n];
	return p;
}

/* base is path.Base for the paths events carry. */
static void base(const char *p, uint32_t n, const char **b, uint32_t *bn) {
	while (n > 0 && p[n - 1] == '/') n--;
	uint32_t i = n;
	while (i > 0 && p[i - 1] != '/') i--;
	if (n - i == 0) *b = "/", *bn = 1;
	else *b = p + i, *bn = n - i;
}

/* user writes the user map of the event's uid and name. */
SLUICE__INLINE void user(cursor *w) {
	map m = begin(w);
	uint64_t uid;
	if (uint_of(fv[F_UID], &uid)) {
		char buf[20];
		key(w, &m, "uid");
		put_str(w, buf, (uint32_t)(put_digits(buf, uid) - buf));
	}
	const char *name;
	uint32_t nn;
	/* The decoder names the user beside the uid ("uid:N" when the host
	 * has no name for it, which is no name). */
	str_of(fv[F_USER], &name, &nn);
	if (nn > 0 && !(nn >= 4 && eq(name, "uid:", 4))) key(w, &m, "name"), put_str(w, name, nn);
	end(m);
}

/* A user map written once per event and copied where it appears again. */
typedef struct {
	const uint8_t *at;
	uint32_t n;
} written;

SLUICE__INLINE written user_once(cursor *w) {
	written u = {w->p, 0};
	user(w);
	u.n = (uint32_t)(w->p - u.at);
	return u;
}
SLUICE__INLINE void put_again(cursor *w, written u) {
	memmove(w->p, u.at, u.n); /* earlier in the same buffer: no overlap */
	w->p += u.n;
}

/* fixmap opens a nested map whose entry count is known up front, inside
 * a blob. */
SLUICE__INLINE void fixmap(cursor *w, uint32_t n) { *w->p++ = (uint8_t)(0x80 | n); }

/* The blobs (see blob), built by build_blobs at init; each comment shows
 * what it holds, "..." where the event's own values go. */
enum { C_LAUNCH, C_OPEN, C_CONNECT, C_N };
static blob b_head[C_N];  /* class_uid ... severity: the class's constant entries */
static blob b_status_ok;  /* status_id: 1, status: "Success" */
static blob b_status_bad; /* status_id: 2, status: "Failure", status_code: */
static blob b_md;         /* (in metadata) version, product: {...}, log_name: */
static blob b_device;     /* device: {hostname: */
static blob b_device_end; /* type_id: 0} */
static blob b_launch_process, b_launch_file, b_launch_parent, b_launch_actor, b_launch_unmapped;
static blob b_open_file, b_actor, b_open_unmapped;
static blob b_src, b_dst, b_conn, b_connect_unmapped;

static void build_blobs(void) {
	static const ocsf_class *const classes[C_N] = {&process_launch, &file_open, &network_open};
	cursor w;
	map m;
	for (int i = 0; i < C_N; i++) {
		const ocsf_class *c = classes[i];
		w = blob_begin(&b_head[i]), m = (map){0, 0};
		kv_int(&w, &m, "class_uid", c->class_uid), kv_str(&w, &m, "class_name", c->class_name);
		kv_int(&w, &m, "category_uid", c->category_uid), kv_str(&w, &m, "category_name", c->category_name);
		kv_int(&w, &m, "activity_id", c->activity_id), kv_str(&w, &m, "activity_name", c->activity);
		kv_int(&w, &m, "type_uid", c->class_uid * 100 + c->activity_id), kv_str(&w, &m, "type_name", c->type_name);
		kv_int(&w, &m, "severity_id", 1), kv_str(&w, &m, "severity", "Informational");
		blob_end(&b_head[i], w, m);
	}
	w = blob_begin(&b_status_ok), m = (map){0, 0};
	kv_int(&w, &m, "status_id", 1), kv_str(&w, &m, "status", "Success");
	blob_end(&b_status_ok, w, m);
	w = blob_begin(&b_status_bad), m = (map){0, 0};
	kv_int(&w, &m, "status_id", 2), kv_str(&w, &m, "status", "Failure"), key(&w, &m, "status_code");
	blob_end(&b_status_bad, w, m);

	w = blob_begin(&b_md), m = (map){0, 0};
	kv_str(&w, &m, "version", "1.1.0");
	key(&w, &m, "product");
	fixmap(&w, 2);
	put_str(&w, "name", 4), put_str(&w, "sluice", 6), put_str(&w, "vendor_name", 11), put_str(&w, "sluice", 6);
	key(&w, &m, "log_name");
	blob_end(&b_md, w, m);
	w = blob_begin(&b_device), m = (map){0, 0};
	key(&w, &m, "device"), fixmap(&w, 2), put_str(&w, "hostname", 8);
	blob_end(&b_device, w, m);
	w = blob_begin(&b_device_end), m = (map){0, 0};
	put_str(&w, "type_id", 7), put_int(&w, 0);
	blob_end(&b_device_end, w, m);

	/* process: {pid, name, cmd_line, file: {path, name, type_id},
	 * parent_process: {pid}, user}, actor: {process: {pid}, user},
	 * unmapped: {args, gid, gid_name, mntns_id} */
	w = blob_begin(&b_launch_process), m = (map){0, 0};
	key(&w, &m, "process"), fixmap(&w, 6), put_str(&w, "pid", 3);
	blob_end(&b_launch_process, w, m);
	w = blob_begin(&b_launch_file), m = (map){0, 0};
	put_str(&w, "file", 4), fixmap(&w, 3), put_str(&w, "path", 4);
	blob_end(&b_launch_file, w, m);
	w = blob_begin(&b_launch_parent), m = (map){0, 0};
	put_str(&w, "type_id", 7), put_int(&w, 1);
	put_str(&w, "parent_process", 14), fixmap(&w, 1), put_str(&w, "pid", 3);
	blob_end(&b_launch_parent, w, m);
	w = blob_begin(&b_launch_actor), m = (map){0, 0};
	key(&w, &m, "actor"), fixmap(&w, 2), put_str(&w, "process", 7), fixmap(&w, 1), put_str(&w, "pid", 3);
	blob_end(&b_launch_actor, w, m);
	w = blob_begin(&b_launch_unmapped), m = (map){0, 0};
	key(&w, &m, "unmapped"), fixmap(&w, 4), put_str(&w, "args", 4);
	blob_end(&b_launch_unmapped, w, m);

	/* file: {path, name}, actor: {process: {pid, name, user}, user},
	 * unmapped: {flags, mode, fd, mntns_id} */
	w = blob_begin(&b_open_file), m = (map){0, 0};
	key(&w, &m, "file"), fixmap(&w, 2), put_str(&w, "path", 4);
	blob_end(&b_open_file, w, m);
	w = blob_begin(&b_actor), m = (map){0, 0};
	key(&w, &m, "actor"), fixmap(&w, 2), put_str(&w, "process", 7), fixmap(&w, 3), put_str(&w, "pid", 3);
	blob_end(&b_actor, w, m);
	w = blob_begin(&b_open_unmapped), m = (map){0, 0};
	key(&w, &m, "unmapped"), fixmap(&w, 4), put_str(&w, "flags", 5);
	blob_end(&b_open_unmapped, w, m);

	/* src_endpoint: {ip, port}, dst_endpoint: {ip, port},
	 * connection_info: {...}, actor, unmapped: {mntns_id} */
	w = blob_begin(&b_src), m = (map){0, 0};
	key(&w, &m, "src_endpoint"), fixmap(&w, 2), put_str(&w, "ip", 2);
	blob_end(&b_src, w, m);
	w = blob_begin(&b_dst), m = (map){0, 0};
	key(&w, &m, "dst_endpoint"), fixmap(&w, 2), put_str(&w, "ip", 2);
	blob_end(&b_dst, w, m);
	w = blob_begin(&b_conn), m = (map){0, 0};
	key(&w, &m, "connection_info"), fixmap(&w, 5);
	put_str(&w, "protocol_name", 13), put_str(&w, "tcp", 3), put_str(&w, "protocol_num", 12), put_int(&w, 6);
	put_str(&w, "direction", 9), put_str(&w, "Outbound", 8), put_str(&w, "direction_id", 12), put_int(&w, 2);
	put_str(&w, "protocol_ver_id", 15);
	blob_end(&b_conn, w, m);
	w = blob_begin(&b_connect_unmapped), m = (map){0, 0};
	key(&w, &m, "unmapped"), fixmap(&w, 1), put_str(&w, "mntns_id", 8);
	blob_end(&b_connect_unmapped, w, m);
}

SLUICE__INLINE void common(cursor *w, map *top, int class) {
	put_blob(w, top, &b_head[class]);

	sluice_value when = fv[F_TIME];
	int64_t sec;
	int32_t nsec;
	if (sluice_value_unix(when, &sec, &nsec)) {
		/* Go's UnixMilli: whole seconds, then the milliseconds of the
		 * fraction; nsec / 1000000 as a multiplication (exact below 10^9). */
		kv_int(w, top, "time", sec * 1000 + (int64_t)((uint64_t)(uint32_t)nsec * 1125899907u >> 50));
	}
	sluice_value ret = fv[F_RET];
	if (sluice_exists(ret)) {
		int64_t n = 0;
		int_of(ret, &n);
		if (n < 0) {
			sluice_value err = fv[F_RET_ERROR];
			put_blob(w, top, &b_status_bad), put_raw(w, err);
			const char *name;
			uint32_t nn;
			str_of(err, &name, &nn);
			char digits[24];
			uint32_t dn = (uint32_t)(put_digits(digits, n == INT64_MIN ? (uint64_t)INT64_MAX + 1 : (uint64_t)-n) - digits);
			key(w, top, "status_detail");
			put_strhdr(w, 6 + dn + 2 + nn + 1);
			put(w, "errno ", 6), put(w, digits, dn), put(w, " (", 2), put(w, name, nn), put(w, ")", 1);
		} else {
			put_blob(w, top, &b_status_ok);
		}
	}

	key(w, top, "metadata");
	map md = begin(w);
	put_blob(w, &md, &b_md), put_raw(w, fv[F_GADGET]);
	const char *ws;
	uint32_t wn;
	str_of(when, &ws, &wn);
	key(w, &md, "original_time"), put_str(w, ws, wn);
	uint64_t seq;
	if (uint_of(fv[F_SEQ], &seq)) {
		key(w, &md, "sequence"), put_uint(w, seq);
		const char *h, *src;
		uint32_t hn, sn;
		str_of(fv[F_HOST], &h, &hn);
		str_of(fv[F_SOURCE], &src, &sn);
		char digits[20];
		uint32_t dn = (uint32_t)(put_digits(digits, seq) - digits);
		key(w, &md, "uid");
		put_strhdr(w, hn + 1 + sn + 1 + dn);
		put(w, h, hn), put(w, "/", 1), put(w, src, sn), put(w, "/", 1), put(w, digits, dn);
	}
	end(md);

	put_blob(w, top, &b_device), put_raw(w, fv[F_HOST]), put_blob(w, top, &b_device_end);

	if (envelope) {
		sluice_value v;
		if (sluice_exists(v = fv[F_HOST])) key(w, top, "host"), put_raw(w, v);
		if (sluice_exists(v = fv[F_SOURCE])) key(w, top, "source"), put_raw(w, v);
		if (sluice_exists(v = fv[F_GADGET])) key(w, top, "gadget"), put_raw(w, v);
		if (sluice_exists(v = fv[F_SEQ])) key(w, top, "seq"), put_raw(w, v);
	}
}

/* actor_process writes actor: the process that did it. */
SLUICE__INLINE void actor_process(cursor *w, map *top) {
	put_blob(w, top, &b_actor), put_raw(w, fv[F_PID]);
	put_str(w, "name", 4), put_raw(w, fv[F_COMM]);
	put_str(w, "user", 4);
	written u = user_once(w);
	put_str(w, "user", 4), put_again(w, u);
}

SLUICE__INLINE void process_fields(cursor *w, map *top) {
	const char *filename, *fb;
	uint32_t fn, fbn;
	str_of(fv[F_FILENAME], &filename, &fn);
	put_blob(w, top, &b_launch_process), put_raw(w, fv[F_PID]);
	put_str(w, "name", 4), put_raw(w, fv[F_COMM]);
	/* cmd_line: the str args joined by spaces, each copied once. */
	sluice_value args = fv[F_ARGS];
	sluice_iter it = sluice_iter_array(args);
	sluice_value a;
	uint32_t total = 0;
	while (sluice_next(&it, &a)) {
		const char *s;
		uint32_t n;
		if (sluice_value_str(a, &s, &n)) total += (total > 0 ? 1 : 0) + n;
	}
	put_str(w, "cmd_line", 8);
	put_strhdr(w, total);
	it = sluice_iter_array(args);
	bool first = true;
	while (sluice_next(&it, &a)) {
		const char *s;
		uint32_t n;
		if (!sluice_value_str(a, &s, &n)) continue;
		if (!first || n > 0) {
			if (!first) *w->p++ = ' ';
			first = false;
		}
		put(w, s, n);
	}
	put_blob(w, top, &b_launch_file), put_str(w, filename, fn);
	base(filename, fn, &fb, &fbn);
	put_str(w, "name", 4), put_str(w, fb, fbn);
	put_blob(w, top, &b_launch_parent), put_raw(w, fv[F_PPID]);
	put_str(w, "user", 4);
	written u = user_once(w);
	/* The actor of a launch is the parent: only its pid is known here. */
	put_blob(w, top, &b_launch_actor), put_raw(w, fv[F_PPID]);
	put_str(w, "user", 4), put_again(w, u);
	put_blob(w, top, &b_launch_unmapped), put_raw(w, args);
	put_str(w, "gid", 3), put_raw(w, fv[F_GID]);
	put_str(w, "gid_name", 8), put_raw(w, fv[F_GID_NAME]);
	put_str(w, "mntns_id", 8), put_raw(w, fv[F_MNTNS_ID]);
}

SLUICE__INLINE void file_fields(cursor *w, map *top) {
	const char *p, *pb;
	uint32_t pn, pbn;
	str_of(fv[F_PATH], &p, &pn);
	base(p, pn, &pb, &pbn);
	put_blob(w, top, &b_open_file), put_str(w, p, pn);
	put_str(w, "name", 4), put_str(w, pb, pbn);
	actor_process(w, top);
	put_blob(w, top, &b_open_unmapped), put_raw(w, fv[F_FLAGS]);
	put_str(w, "mode", 4), put_raw(w, fv[F_MODE]);
	put_str(w, "fd", 2), put_raw(w, fv[F_RET]);
	put_str(w, "mntns_id", 8), put_raw(w, fv[F_MNTNS_ID]);
}

SLUICE__INLINE void network_fields(cursor *w, map *top) {
	put_blob(w, top, &b_src), put_raw(w, fv[F_SADDR]), put_str(w, "port", 4), put_raw(w, fv[F_SPORT]);
	put_blob(w, top, &b_dst), put_raw(w, fv[F_DADDR]), put_str(w, "port", 4), put_raw(w, fv[F_DPORT]);
	const char *fam;
	uint32_t famn;
	str_of(fv[F_FAMILY], &fam, &famn);
	put_blob(w, top, &b_conn), put_int(w, famn == 8 && eq(fam, "AF_INET6", 8) ? 6 : 4);
	actor_process(w, top);
	put_blob(w, top, &b_connect_unmapped), put_raw(w, fv[F_MNTNS_ID]);
}

static void ocsf_event(sluice_event *ev, sluice_out *out) {
	fv = sluice_fields_values(&fields, ev, fv_scan);
	const char *g;
	uint32_t gn;
	str_of(fv[F_GADGET], &g, &gn);
	int c = -1;
	if (gn == 10 && eq(g, "trace_exec", 10)) c = C_LAUNCH;
	else if (gn == 10 && eq(g, "trace_open", 10)) c = C_OPEN;
	else if (gn == 16 && eq(g, "trace_tcpconnect", 16)) c = C_CONNECT;
	if (c < 0) {
		if (!drop_others) sluice_keep(out, ev);
		return;
	}
	uint64_t room = 4 * (uint64_t)ev->raw.len + 4096;
	if (room > UINT32_MAX / 2) {
		sluice_fail("ocsf: event %u of %u bytes is too large to map", ev->index, ev->raw.len);
		return;
	}
	uint8_t *start = sluice_emit_reserve(out, ev, (uint32_t)room);
	if (!start) return; /* out of memory: the call fails with it */
	cursor w = {start};
	map top = {w.p, 0};
	w.p += 3; /* a map16: the top level has more than 15 entries */
	common(&w, &top, c);
	if (c == C_LAUNCH) process_fields(&w, &top);
	else if (c == C_OPEN) file_fields(&w, &top);
	else network_fields(&w, &top);
	top.at[0] = 0xde, top.at[1] = (uint8_t)(top.n >> 8), top.at[2] = (uint8_t)top.n;
	if ((uint64_t)(w.p - start) > room) {
		/* Cannot happen (see cursor); if it did, memory past the
		 * reservation was overwritten: fail the batch. */
		sluice_fail("ocsf: wrote %u bytes in %llu reserved", (unsigned)(w.p - start), (unsigned long long)room);
		return;
	}
	sluice_emit_commit(out, (uint32_t)(w.p - start));
	sluice_count(mapped, 1);
}
