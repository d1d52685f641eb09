// ig.h: Inspektor Gadget's wasm API (import module "ig") for the C test
// guests in this directory, declared from IG's documentation of the API.
// Like guest.h it is deliberately not an SDK: one declaration per host
// function, strings and buffers passed as IG's bufPtrs.
#ifndef SLUICE_TEST_IG_H
#define SLUICE_TEST_IG_H

#include <stdint.h>
#include <string.h>

#define IGIMPORT(name) __attribute__((import_module("ig"), import_name(name)))
#define IGEXPORT(name) __attribute__((export_name(name)))

typedef uint64_t bufptr;

// buf is IG's bufPtr of n bytes at p: the length in the high 32 bits.
static inline bufptr buf(const void *p, uint32_t n) { return n ? ((uint64_t)n << 32) | (uint32_t)(uintptr_t)p : 0; }
static inline bufptr str(const char *s) { return buf(s, (uint32_t)strlen(s)); }

IGIMPORT("gadgetLog") void ig_log(uint32_t level, bufptr msg);
IGIMPORT("newDataSource") uint32_t ig_new_data_source(bufptr name, uint32_t type);
IGIMPORT("getDataSource") uint32_t ig_get_data_source(bufptr name);
IGIMPORT("dataSourceSubscribe") uint32_t ig_subscribe(uint32_t ds, uint32_t type, uint32_t prio, uint64_t cb);
IGIMPORT("dataSourceGetField") uint32_t ig_get_field(uint32_t ds, bufptr name);
IGIMPORT("dataSourceAddField") uint32_t ig_add_field(uint32_t ds, bufptr name, uint32_t kind);
IGIMPORT("dataSourceNewPacketSingle") uint32_t ig_new_packet_single(uint32_t ds);
IGIMPORT("dataSourceEmitAndRelease") uint32_t ig_emit_and_release(uint32_t ds, uint32_t packet);
IGIMPORT("dataSourceRelease") uint32_t ig_release(uint32_t ds, uint32_t packet);
IGIMPORT("fieldGetScalar") uint64_t ig_field_get_scalar(uint32_t field, uint32_t data, uint32_t kind, uint32_t *err);
IGIMPORT("fieldGetBuffer") int32_t ig_field_get_buffer(uint32_t field, uint32_t data, uint32_t kind, bufptr dst);
IGIMPORT("fieldSet") uint32_t ig_field_set(uint32_t field, uint32_t data, uint32_t kind, uint64_t value);
IGIMPORT("fieldGetStruct") int32_t ig_field_get_struct(uint32_t field, uint32_t data, bufptr dst);
IGIMPORT("shouldDiscardMntnsID") uint32_t ig_should_discard_mntns_id(uint64_t mntns);
IGIMPORT("getParamValue") uint32_t ig_get_param_value(bufptr key, bufptr dst);
IGIMPORT("getMap") uint32_t ig_get_map(bufptr name);
IGIMPORT("mapLookup") uint32_t ig_map_lookup(uint32_t map, bufptr key, bufptr value);
IGIMPORT("mapUpdate") uint32_t ig_map_update(uint32_t map, bufptr key, bufptr value, uint64_t flags);
IGIMPORT("releaseHandle") uint32_t ig_release_handle(uint32_t handle);

enum { IG_ERROR, IG_WARN, IG_INFO, IG_DEBUG, IG_TRACE };
enum { IG_SUB_DATA = 1, IG_SUB_ARRAY = 2, IG_SUB_PACKET = 3 };
enum { IG_DS_SINGLE = 1, IG_DS_ARRAY = 2 };
enum {
	IG_KIND_BOOL = 1, IG_KIND_INT8, IG_KIND_INT16, IG_KIND_INT32, IG_KIND_INT64,
	IG_KIND_UINT8, IG_KIND_UINT16, IG_KIND_UINT32, IG_KIND_UINT64,
	IG_KIND_FLOAT32, IG_KIND_FLOAT64, IG_KIND_STRING, IG_KIND_CSTRING, IG_KIND_BYTES,
};

static inline void ig_logs(uint32_t level, const char *msg) { ig_log(level, str(msg)); }

#endif
