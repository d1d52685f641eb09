// SPDX-License-Identifier: Apache-2.0
/*
 * ringbench.wasm: waits until the benchmark has filled the ring buffer
 * (the `state` map says so), then drains it with a callback that only
 * counts, so the host's poll path is what is measured.
 *
 *   ringbench -p TGID
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "wasm_bpf.h"

struct state {
	uint64_t produced;
	uint32_t full;
	uint32_t pad;
};

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
	int state = wasm_bpf_map_fd_by_name(obj, "state");
	printf("ringbench: waiting for a full buffer\n");
	struct state st = {0};
	uint32_t zero = 0;
	while (wasm_bpf_map_operate(state, WB_MAP_LOOKUP, &zero, &st, NULL, 0) == 0 && !st.full)
		usleep(1000);
	printf("ringbench: draining %llu records\n", (unsigned long long)st.produced);
	int err;
	while ((err = wb_poll(obj, fd, count, NULL, buf, sizeof(buf), 100)) == 0)
		;
	printf("ringbench: %llu records\n", records);
	return err == -WB_EINTR ? 0 : 1;
}
