// SPDX-License-Identifier: Apache-2.0
/*
 * execsnoop.wasm: a wasm-bpf application in the shape of libbpf-bootstrap's
 * bootstrap: it writes its settings from argv into the object's .rodata,
 * loads and attaches it, and prints every exec and exit it polls from the
 * ring buffer.
 *
 *   execsnoop [-p PPID] [-d MIN_DURATION_MS]
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "wasm_bpf.h"
#include "execsnoop.h"

static unsigned char object[] = {
#embed <execsnoop.bpf.o>
};

static int handle_event(void *ctx, void *data, size_t size)
{
	const struct event *e = data;

	if (size < sizeof(*e))
		return 0;
	if (e->exit_event)
		printf("EXIT  %-16s pid=%d ppid=%d [%u] (%llums)\n", e->comm, e->pid, e->ppid,
		       e->exit_code, e->duration_ns / 1000000);
	else
		printf("EXEC  %-16s pid=%d ppid=%d %s\n", e->comm, e->pid, e->ppid, e->filename);
	return 0;
}

static int set_global(const char *name, const void *value, size_t size)
{
	size_t len;
	void *p = wb_elf_global(object, sizeof(object), name, &len);

	if (!p || len != size) {
		fprintf(stderr, "no global %s of %zu bytes in the object\n", name, size);
		return -1;
	}
	memcpy(p, value, size);
	return 0;
}

int main(int argc, char **argv)
{
	int target_ppid = 0;
	unsigned long long min_duration_ns = 0;
	char buf[4096];
	int err = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-p") && i + 1 < argc)
			target_ppid = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-d") && i + 1 < argc)
			min_duration_ns = strtoull(argv[++i], NULL, 10) * 1000000ULL;
		else {
			fprintf(stderr, "usage: %s [-p PPID] [-d MIN_DURATION_MS]\n", argv[0]);
			return 2;
		}
	}
	if (set_global("target_ppid", &target_ppid, sizeof(target_ppid)) ||
	    set_global("min_duration_ns", &min_duration_ns, sizeof(min_duration_ns)))
		return 1;

	bpf_object_skel obj = wasm_load_bpf_object(object, sizeof(object));
	if (!obj) {
		fprintf(stderr, "failed to load the BPF object\n");
		return 1;
	}
	if (wasm_attach_bpf_program(obj, "handle_exec", NULL) < 0 ||
	    wasm_attach_bpf_program(obj, "handle_exit", NULL) < 0) {
		fprintf(stderr, "failed to attach\n");
		wasm_close_bpf_object(obj);
		return 1;
	}
	int fd = wasm_bpf_map_fd_by_name(obj, "rb");
	printf("tracing execs (target ppid %d, min duration %llu ns)\n", target_ppid, min_duration_ns);
	for (;;) {
		err = wb_poll(obj, fd, handle_event, NULL, buf, sizeof(buf), 100);
		if (err == -WB_EINTR) {
			err = 0;
			break;
		}
		if (err < 0) {
			fprintf(stderr, "error polling the ring buffer: %d\n", err);
			break;
		}
	}
	wasm_close_bpf_object(obj);
	printf("execsnoop done\n");
	return err < 0 ? 1 : 0;
}
