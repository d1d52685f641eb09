// SPDX-License-Identifier: Apache-2.0
/* trap_callback.wasm: a hostile guest whose sample callback traps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "wasm_bpf.h"

static unsigned char object[] = {
#embed <execsnoop.bpf.o>
};

static int handle_event(void *ctx, void *data, size_t size)
{
	__builtin_trap();
}

int main(int argc, char **argv)
{
	size_t len;
	char buf[512];
	int *ppid = wb_elf_global(object, sizeof(object), "target_ppid", &len);

	if (argc == 3 && ppid)
		*ppid = atoi(argv[2]);
	bpf_object_skel obj = wasm_load_bpf_object(object, sizeof(object));
	if (!obj || wasm_attach_bpf_program(obj, "handle_exec", NULL) < 0)
		return 1;
	int fd = wasm_bpf_map_fd_by_name(obj, "rb");
	printf("trap_callback: polling\n");
	fflush(stdout);
	while (wb_poll(obj, fd, handle_event, NULL, buf, sizeof(buf), 100) == 0)
		;
	return 0;
}
