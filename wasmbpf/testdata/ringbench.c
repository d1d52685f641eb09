// SPDX-License-Identifier: Apache-2.0
/*
 * ringbench.wasm: polls the benchmark's ring buffer with a callback that
 * only counts, so the host's poll path is what is measured.
 *
 *   ringbench -p TGID
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "wasm_bpf.h"

static unsigned char object[] = {
#embed <ringbench.bpf.o>
};

static unsigned long long records;

static int count(void *ctx, void *data, size_t size)
{
	records++;
	return 0;
}

int main(int argc, char **argv)
{
	size_t len;
	char buf[256];
	uint32_t *target = wb_elf_global(object, sizeof(object), "target_tgid", &len);

	if (argc != 3 || strcmp(argv[1], "-p") || !target || len != 4)
		return 2;
	*target = (uint32_t)atoi(argv[2]);
	bpf_object_skel obj = wasm_load_bpf_object(object, sizeof(object));
	if (!obj || wasm_attach_bpf_program(obj, "burst", NULL) < 0)
		return 1;
	int fd = wasm_bpf_map_fd_by_name(obj, "records");
	printf("ringbench: polling\n");
	fflush(stdout);
	int err;
	while ((err = wb_poll(obj, fd, count, NULL, buf, sizeof(buf), 100)) == 0)
		;
	printf("ringbench: %llu records\n", records);
	return err == -WB_EINTR ? 0 : 1;
}
