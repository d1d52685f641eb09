// SPDX-License-Identifier: Apache-2.0
/*
 * sigsnoop.wasm: kill(2) calls of one process (-p PID), polled from a perf
 * event array. With -w MS it waits that long between the attach and its
 * first poll (what a guest busy setting itself up does).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "wasm_bpf.h"

struct event {
	uint32_t pid;
	int32_t tpid;
	int32_t sig;
	char comm[16];
};

static unsigned char object[] = {
#embed <sigsnoop.bpf.o>
};

static int seen;

static int handle_event(void *ctx, void *data, size_t size)
{
	const struct event *e = data;

	if (size < sizeof(*e))
		return 0;
	seen++;
	printf("SIGNAL %s pid=%u tpid=%d sig=%d (#%d)\n", e->comm, e->pid, e->tpid, e->sig, seen);
	return 0;
}

int main(int argc, char **argv)
{
	uint32_t pid = 0;
	size_t len;
	char buf[256];

	unsigned wait_ms = 0;

	if (argc >= 3 && !strcmp(argv[1], "-p"))
		pid = (uint32_t)atoi(argv[2]);
	if (argc == 5 && !strcmp(argv[3], "-w"))
		wait_ms = (unsigned)atoi(argv[4]);
	uint32_t *target = wb_elf_global(object, sizeof(object), "target_pid", &len);
	if (!target || len != sizeof(*target))
		return 1;
	*target = pid;
	bpf_object_skel obj = wasm_load_bpf_object(object, sizeof(object));
	if (!obj)
		return 1;
	if (wasm_attach_bpf_program(obj, "kill_entry", NULL) < 0)
		return 1;
	int fd = wasm_bpf_map_fd_by_name(obj, "events");
	printf("tracing kill(2) of pid %u\n", pid);
	if (wait_ms) {
		fflush(stdout);
		usleep(wait_ms * 1000);
		printf("first poll\n");
	}
	int err;
	while ((err = wb_poll(obj, fd, handle_event, NULL, buf, sizeof(buf), 100)) == 0)
		;
	wasm_close_bpf_object(obj);
	return err == -WB_EINTR ? 0 : 1;
}
