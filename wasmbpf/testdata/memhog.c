// SPDX-License-Identifier: Apache-2.0
/* memhog.wasm: takes MiB of memory (argv[1], default 128), touches every
 * page, then traces execs like execsnoop until it is stopped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "wasm_bpf.h"

static unsigned char object[] = {
#embed <execsnoop.bpf.o>
};

static int handle_event(void *ctx, void *data, size_t size) { return 0; }

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? (size_t)atoi(argv[1]) : 128;
	char *hog = malloc(mib << 20);
	char buf[512];

	if (!hog) {
		printf("memhog: no memory\n");
		return 1;
	}
	memset(hog, 0xa5, mib << 20);
	bpf_object_skel obj = wasm_load_bpf_object(object, sizeof(object));
	if (!obj || wasm_attach_bpf_program(obj, "handle_exec", NULL) < 0)
		return 1;
	int fd = wasm_bpf_map_fd_by_name(obj, "rb");
	printf("memhog: holding %zu MiB\n", mib);
	fflush(stdout);
	int err;
	while ((err = wb_poll(obj, fd, handle_event, NULL, buf, sizeof(buf), 100)) == 0)
		;
	return hog[mib << 19] == (char)0xa5 && err == -WB_EINTR ? 0 : 1;
}
