// SPDX-License-Identifier: Apache-2.0
/* kprobe.wasm: loads a kprobe and attaches it; prints what the host said. */
#include <stdio.h>
#include "wasm_bpf.h"

static unsigned char object[] = {
#embed <kprobe.bpf.o>
};

int main(void)
{
	bpf_object_skel obj = wasm_load_bpf_object(object, sizeof(object));
	if (!obj) {
		printf("kprobe: load failed\n");
		return 3;
	}
	int err = wasm_attach_bpf_program(obj, "probe_nanosleep", NULL);
	printf("kprobe: attach returned %d\n", err);
	wasm_close_bpf_object(obj);
	return err == 0 ? 0 : 4;
}
