// SPDX-License-Identifier: Apache-2.0
/*
 * mapcount.wasm: writes the pids given on the command line into the hash
 * map `targets`, then every 20 ms walks the hash map `counts` (next key,
 * lookup), prints each count and deletes it, so each line says how many
 * getcwd(2) calls a process made since the last.
 *
 *   mapcount PID...
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "wasm_bpf.h"

static unsigned char object[] = {
#embed <mapcount.bpf.o>
};

int main(int argc, char **argv)
{
	bpf_object_skel obj = wasm_load_bpf_object(object, sizeof(object));
	if (!obj) {
		fprintf(stderr, "failed to load the BPF object\n");
		return 1;
	}
	int targets = wasm_bpf_map_fd_by_name(obj, "targets");
	int counts = wasm_bpf_map_fd_by_name(obj, "counts");
	if (targets < 0 || counts < 0)
		return 1;
	for (int i = 1; i < argc; i++) {
		uint32_t pid = (uint32_t)atoi(argv[i]);
		uint8_t on = 1;
		int err = wasm_bpf_map_operate(targets, WB_MAP_UPDATE, &pid, &on, NULL, WB_NOEXIST);
		if (err) {
			fprintf(stderr, "update targets[%u]: %d\n", pid, err);
			return 1;
		}
	}
	/* An update of an existing key with BPF_NOEXIST must fail with EEXIST. */
	if (argc > 1) {
		uint32_t pid = (uint32_t)atoi(argv[1]);
		uint8_t on = 1;
		int err = wasm_bpf_map_operate(targets, WB_MAP_UPDATE, &pid, &on, NULL, WB_NOEXIST);
		printf("second insert of %u: %d\n", pid, err);
	}
	if (wasm_attach_bpf_program(obj, "count_getcwd", NULL) < 0)
		return 1;
	printf("counting getcwd of %d processes\n", argc - 1);
	fflush(stdout);
	for (;;) {
		uint32_t key, next;
		int err = wasm_bpf_map_operate(counts, WB_MAP_NEXT_KEY, NULL, NULL, &next, 0);
		while (err == 0) {
			uint64_t n;
			key = next;
			if (wasm_bpf_map_operate(counts, WB_MAP_LOOKUP, &key, &n, NULL, 0) == 0)
				printf("count pid=%u calls=%llu\n", key, (unsigned long long)n);
			err = wasm_bpf_map_operate(counts, WB_MAP_NEXT_KEY, &key, NULL, &next, 0);
			wasm_bpf_map_operate(counts, WB_MAP_DELETE, &key, NULL, NULL, 0);
		}
		if (err != -WB_ENOENT) {
			fprintf(stderr, "walk counts: %d\n", err);
			return 1;
		}
		fflush(stdout);
		usleep(20000);
	}
}
