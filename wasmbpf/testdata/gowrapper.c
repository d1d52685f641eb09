// SPDX-License-Identifier: Apache-2.0
/*
 * gowrapper.wasm: polls as wasm-bpf's TinyGo SDK does, through
 * callback-wrapper.wasm_bpf_buffer_poll, whose callback is the export
 * go-callback (TinyGo cannot take a function's table index). Like the
 * SDK's examples it polls forever and ignores what the poll returns, so a
 * stop has to interrupt it.
 */
#include <stdio.h>
#include <stdlib.h>
#include "wasm_bpf.h"
#include "execsnoop.h"

__attribute__((import_module("callback-wrapper"), import_name("wasm_bpf_buffer_poll")))
int wrapper_poll(bpf_object_skel obj, int fd, uint32_t ctx, char *data, int max_size, int timeout_ms);

static unsigned char object[] = {
#embed <execsnoop.bpf.o>
};

__attribute__((export_name("go-callback")))
int go_callback(uint32_t ctx, uint32_t data, uint32_t size)
{
	const struct event *e = (const struct event *)(uintptr_t)data;

	if (size >= sizeof(*e) && !e->exit_event)
		printf("go-callback: %s pid=%d ctx=%u\n", e->comm, e->pid, ctx);
	return 0;
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
	printf("gowrapper: polling\n");
	for (;;)
		wrapper_poll(obj, fd, 42, buf, sizeof(buf), 100);
}
