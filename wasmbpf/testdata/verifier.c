// SPDX-License-Identifier: Apache-2.0
/* verifier.wasm: a guest whose object the verifier rejects. */
#include <stdio.h>
#include "wasm_bpf.h"

static unsigned char object[] = {
#embed <verifier_reject.bpf.o>
};

int main(void)
{
	bpf_object_skel obj = wasm_load_bpf_object(object, sizeof(object));
	if (!obj) {
		printf("verifier: load refused\n");
		return 1;
	}
	printf("verifier: load accepted?\n");
	return 0;
}
