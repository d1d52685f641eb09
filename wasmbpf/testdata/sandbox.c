// SPDX-License-Identifier: Apache-2.0
/*
 * sandbox.wasm: prints what the guest can reach besides its eBPF: a file
 * of the host, its environment, a granted directory, its argv. It loads
 * no object (a wasm-bpf application need not to import more than one
 * host function to be one).
 */
#include <stdio.h>
#include <stdlib.h>
#include "wasm_bpf.h"

int main(int argc, char **argv)
{
	FILE *f = fopen("/etc/passwd", "r");
	printf("sandbox: /etc/passwd %s\n", f ? "opened" : "refused");
	FILE *g = fopen("/granted/hello.txt", "r");
	char line[64] = "";
	if (g && fgets(line, sizeof(line), g))
		printf("sandbox: /granted/hello.txt says %s", line);
	else
		printf("sandbox: /granted/hello.txt refused\n");
	const char *home = getenv("HOME"), *tz = getenv("TZ");
	printf("sandbox: HOME=%s TZ=%s\n", home ? home : "(unset)", tz ? tz : "(unset)");
	printf("sandbox: argv[0]=%s argc=%d\n", argv[0], argc);
	/* Any host function makes it a wasm-bpf application. */
	if (argc > 99)
		wasm_close_bpf_object(1);
	return 0;
}
