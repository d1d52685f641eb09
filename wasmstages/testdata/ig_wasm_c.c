// The C twin of ig_wasm_go: the Inspektor Gadget module of the IG-style
// test gadget gadgets/testdata/ig_wasm.bpf.c, against IG's wasm API
// (ig.h). It writes the wasm param "tag" into the gadget's map tags at
// gadgetStart, drops the events whose who is the param "drop_who", adds
// who_hex and calls (from the gadget's map counts) to the others, and
// emits one "summary" event with the number it saw at gadgetStop. A who of
// 0xdead makes it trap (the test of a failing module); gadgetPostStop
// logs "ig_wasm_c: post stop".
#include <stdio.h>
#include <stdlib.h>

#include "ig.h"

static uint32_t calls_ds, summary_ds, who_f, who_hex_f, calls_f, seen_f, counts_map;
static uint64_t drop_who, seen;

// param reads a wasm param as a number (0 when unset).
static int param(const char *key, uint64_t *v) {
	char val[32] = {0};
	*v = 0;
	if (ig_get_param_value(str(key), buf(val, sizeof val - 1)) != 0 || !val[0]) return 0;
	char *end;
	*v = strtoull(val, &end, 0);
	return *end == 0 ? 0 : -1;
}

IGEXPORT("gadgetAPIVersion") uint64_t gadget_api_version(void) { return 1; }

IGEXPORT("gadgetInit") int32_t gadget_init(void) {
	calls_ds = ig_get_data_source(str("calls"));
	summary_ds = ig_new_data_source(str("summary"), IG_DS_SINGLE);
	if (!calls_ds || !summary_ds) {
		ig_logs(IG_ERROR, "no data source calls, or no summary");
		return 1;
	}
	who_f = ig_get_field(calls_ds, str("who"));
	who_hex_f = ig_add_field(calls_ds, str("who_hex"), IG_KIND_STRING);
	calls_f = ig_add_field(calls_ds, str("calls"), IG_KIND_UINT64);
	seen_f = ig_add_field(summary_ds, str("events"), IG_KIND_UINT64);
	if (!who_f || !who_hex_f || !calls_f || !seen_f) {
		ig_logs(IG_ERROR, "cannot get or add the fields");
		return 1;
	}
	if (param("drop_who", &drop_who) != 0) {
		ig_logs(IG_ERROR, "drop_who is not a number");
		return 1;
	}
	if (ig_subscribe(calls_ds, IG_SUB_DATA, 0, 1) != 0) {
		ig_logs(IG_ERROR, "cannot subscribe to calls");
		return 1;
	}
	ig_logs(IG_INFO, "ig_wasm_c: init done");
	return 0;
}

IGEXPORT("gadgetStart") int32_t gadget_start(void) {
	uint64_t tag, back = 0;
	uint32_t key = 0;
	if (param("tag", &tag) != 0) {
		ig_logs(IG_ERROR, "tag is not a number");
		return 1;
	}
	uint32_t tags = ig_get_map(str("tags"));
	counts_map = ig_get_map(str("counts"));
	if (!tags || !counts_map) {
		ig_logs(IG_ERROR, "the gadget's maps tags and counts are missing");
		return 1;
	}
	if (ig_map_update(tags, buf(&key, 4), buf(&tag, 8), 0) != 0 ||
	    ig_map_lookup(tags, buf(&key, 4), buf(&back, 8)) != 0 || back != tag) {
		ig_logs(IG_ERROR, "cannot write the tag, or it does not read back");
		return 1;
	}
	ig_release_handle(tags);
	char msg[64];
	snprintf(msg, sizeof msg, "ig_wasm_c: tag %llu written", (unsigned long long)tag);
	ig_logs(IG_INFO, msg);
	return 0;
}

IGEXPORT("gadgetStop") int32_t gadget_stop(void) {
	uint32_t p = ig_new_packet_single(summary_ds);
	if (!p || ig_field_set(seen_f, p, IG_KIND_UINT64, seen) != 0 || ig_emit_and_release(summary_ds, p) != 0) {
		ig_logs(IG_ERROR, "cannot emit the summary");
		return 1;
	}
	return 0;
}

IGEXPORT("gadgetPostStop") int32_t gadget_post_stop(void) {
	ig_logs(IG_INFO, "ig_wasm_c: post stop");
	return 0;
}

IGEXPORT("dataSourceCallback") void data_source_callback(uint64_t cb, uint32_t ds, uint32_t data) {
	(void)cb; // one subscription
	uint32_t err = 0;
	uint64_t who = ig_field_get_scalar(who_f, data, IG_KIND_UINT64, &err);
	if (err) {
		ig_logs(IG_ERROR, "cannot read who");
		return;
	}
	seen++;
	if (who == 0xdead) __builtin_trap();
	if (drop_who && who == drop_who) {
		ig_release(ds, data);
		return;
	}
	char hex[24];
	snprintf(hex, sizeof hex, "0x%llx", (unsigned long long)who);
	ig_field_set(who_hex_f, data, IG_KIND_STRING, str(hex));
	uint64_t count = 0;
	if (ig_map_lookup(counts_map, buf(&who, 8), buf(&count, 8)) == 0)
		ig_field_set(calls_f, data, IG_KIND_UINT64, count);
}
