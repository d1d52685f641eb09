// The C twin of ig_wasm_go: the Inspektor Gadget module of the IG-style
// test gadget gadgets/testdata/ig_wasm.bpf.c, against IG's wasm API
// (ig.h). It writes the wasm param "tag" into the gadget's map tags at
// gadgetStart, drops the events whose who is the param "drop_who", adds
// who_hex and calls (from the gadget's map counts) to the others, and
// emits one "summary" event with the number it saw at gadgetStop. A who of
// 0xdead makes it trap (the test of a failing module); gadgetPostStop
// logs "ig_wasm_c: post stop". Like its twin it adds proc_json, discard
// and probe_discard where the events have proc and the param "probe" is
// set, logs the maps gadgetPreStart can open, and reports the events of
// the containers data source as events of its data source
// "containers_seen".
#include <stdio.h>
#include <stdlib.h>

#include "ig.h"

static uint32_t calls_ds, summary_ds, who_f, who_hex_f, calls_f, seen_f, counts_map;
static uint64_t drop_who, seen;
static uint32_t proc_f, mntns_f, proc_json_f, discard_f, probe_f;
static uint64_t probe[16];
static int nprobe;
static uint32_t containers_ds, ctype_f, cname_f, cmntns_f;
static uint32_t seen_ds, se_type_f, se_name_f, se_ns_f, se_discard_f;

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
	if ((proc_f = ig_get_field(calls_ds, str("proc"))))
		proc_json_f = ig_add_field(calls_ds, str("proc_json"), IG_KIND_STRING);
	if ((mntns_f = ig_get_field(calls_ds, str("proc.mntns_id"))))
		discard_f = ig_add_field(calls_ds, str("discard"), IG_KIND_BOOL);
	char list[256] = {0};
	if (ig_get_param_value(str("probe"), buf(list, sizeof list - 1)) == 0 && list[0]) {
		for (char *p = list; *p && nprobe < 16;) {
			char *end;
			probe[nprobe++] = strtoull(p, &end, 10);
			if (end == p || (*end && *end != ',')) {
				ig_logs(IG_ERROR, "probe is not a list of numbers");
				return 1;
			}
			p = *end ? end + 1 : end;
		}
		probe_f = ig_add_field(calls_ds, str("probe_discard"), IG_KIND_STRING);
	}
	containers_ds = ig_get_data_source(str("containers"));
	seen_ds = ig_new_data_source(str("containers_seen"), IG_DS_SINGLE);
	ctype_f = ig_get_field(containers_ds, str("event_type"));
	cname_f = ig_get_field(containers_ds, str("name"));
	cmntns_f = ig_get_field(containers_ds, str("mntns_id"));
	se_type_f = ig_add_field(seen_ds, str("container_event"), IG_KIND_STRING);
	se_name_f = ig_add_field(seen_ds, str("container_name"), IG_KIND_STRING);
	se_ns_f = ig_add_field(seen_ds, str("container_mntns"), IG_KIND_UINT64);
	se_discard_f = ig_add_field(seen_ds, str("container_discard"), IG_KIND_BOOL);
	if (!ctype_f || !cname_f || !cmntns_f || !se_type_f || !se_name_f || !se_ns_f || !se_discard_f ||
	    ig_subscribe(containers_ds, IG_SUB_DATA, 0, 2) != 0) {
		ig_logs(IG_ERROR, "cannot subscribe to containers");
		return 1;
	}
	ig_logs(IG_INFO, "ig_wasm_c: init done");
	return 0;
}

// IG runs gadgetPreStart before the eBPF collection loads.
IGEXPORT("gadgetPreStart") int32_t gadget_pre_start(void) {
	uint32_t m = ig_get_map(str("counts"));
	if (m) ig_release_handle(m);
	ig_logs(IG_INFO, m ? "ig_wasm_c: maps before the gadget loads: counts" : "ig_wasm_c: maps before the gadget loads: none");
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

static void on_container(uint32_t data) {
	char type[16] = {0}, name[256] = {0};
	uint32_t err = 0;
	int32_t n = ig_field_get_buffer(ctype_f, data, IG_KIND_STRING, buf(type, sizeof type - 1));
	int32_t m = ig_field_get_buffer(cname_f, data, IG_KIND_STRING, buf(name, sizeof name - 1));
	uint64_t ns = ig_field_get_scalar(cmntns_f, data, IG_KIND_UINT64, &err);
	if (n < 0 || m < 0 || err) {
		ig_logs(IG_ERROR, "cannot read a container event");
		return;
	}
	uint32_t p = ig_new_packet_single(seen_ds);
	ig_field_set(se_type_f, p, IG_KIND_STRING, buf(type, (uint32_t)n));
	ig_field_set(se_name_f, p, IG_KIND_STRING, buf(name, (uint32_t)m));
	ig_field_set(se_ns_f, p, IG_KIND_UINT64, ns);
	ig_field_set(se_discard_f, p, IG_KIND_BOOL, ig_should_discard_mntns_id(ns));
	ig_emit_and_release(seen_ds, p);
}

IGEXPORT("dataSourceCallback") void data_source_callback(uint64_t cb, uint32_t ds, uint32_t data) {
	if (cb == 2) {
		on_container(data);
		return;
	}
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
	if (proc_json_f) {
		static char js[1024];
		int32_t n = ig_field_get_struct(proc_f, data, buf(js, sizeof js));
		if (n >= 0) ig_field_set(proc_json_f, data, IG_KIND_STRING, buf(js, (uint32_t)n));
	}
	if (discard_f) {
		uint64_t ns = ig_field_get_scalar(mntns_f, data, IG_KIND_UINT64, &err);
		if (!err) ig_field_set(discard_f, data, IG_KIND_BOOL, ig_should_discard_mntns_id(ns));
	}
	if (probe_f) {
		char answers[64] = {0};
		for (int i = 0; i < nprobe; i++) {
			answers[2 * i] = ig_should_discard_mntns_id(probe[i]) ? '1' : '0';
			answers[2 * i + 1] = i + 1 < nprobe ? ',' : 0;
		}
		ig_field_set(probe_f, data, IG_KIND_STRING, str(answers));
	}
}
