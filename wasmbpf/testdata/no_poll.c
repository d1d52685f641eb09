// SPDX-License-Identifier: Apache-2.0
/* no_poll.wasm: a hostile guest that attaches a tracer and then spins
 * forever without polling its ring buffer (nor calling the host). */
#include <stdio.h>
#include <stdlib.h>
#include "wasm_bpf.h"

static unsigned char object[] = {
#embed <execsnoop.bpf.o>
};

volatile unsigned long long spins;

int main(int argc, char **argv)
{
	size_t len;
	int *ppid = wb_elf_global(object, sizeof(object), "target_ppid", &len);

	if (argc == 3 && ppid)
		*ppid = atoi(argv[2]);
	bpf_object_skel obj = wasm_load_bpf_object(object, sizeof(object));
	if (!obj || wasm_attach_bpf_program(obj, "handle_exec", NULL) < 0)
		return 1;
	printf("no_poll: attached, never polling\n");
	fflush(stdout);
	for (;;)
		spins++;
}
