// An Inspektor Gadget module written against a newer API than this host's:
// it imports functions sluice does not implement, which must fail the load
// with one line naming them.
#include "ig.h"

IGIMPORT("fieldGetStruct") int32_t ig_field_get_struct(uint32_t field, uint32_t data, bufptr dst);
IGIMPORT("someFutureFunction") uint32_t ig_some_future_function(void);

IGEXPORT("gadgetAPIVersion") uint64_t gadget_api_version(void) { return 1; }

IGEXPORT("gadgetInit") int32_t gadget_init(void) {
	char b[8];
	int32_t rc = 0;
	for (volatile int i = 0; i < 3; i++) rc += (int32_t)ig_some_future_function();
	return rc + ig_field_get_struct(1, 1, buf(b, sizeof b)) + (int32_t)ig_get_data_source(str("x"));
}
