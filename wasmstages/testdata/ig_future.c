// An Inspektor Gadget module importing functions sluice does not
// implement, which must fail the load with one line naming them.
#include "ig.h"

// getContainers is one of IG's handle-based container functions, which
// sluice leaves out: the containers data source reports containers.
IGIMPORT("getContainers") uint32_t ig_get_containers(void);
IGIMPORT("someFutureFunction") uint32_t ig_some_future_function(void);

IGEXPORT("gadgetAPIVersion") uint64_t gadget_api_version(void) { return 1; }

IGEXPORT("gadgetInit") int32_t gadget_init(void) {
	char b[8] = "x";
	int32_t rc = 0;
	for (volatile int i = 0; i < 3; i++) rc += (int32_t)ig_some_future_function();
	return rc + (int32_t)ig_get_containers() + (int32_t)ig_get_data_source(str(b));
}
