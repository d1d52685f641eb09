// SPDX-License-Identifier: Apache-2.0
/*
 * bad_pointers.wasm: a hostile guest that passes pointers outside its
 * memory (and bad handles, descriptors and callbacks) to every host
 * function. Each call must be refused with an error; the guest counts
 * and prints what was refused and exits 0 only if all were.
 */
#include <stdio.h>
#include "wasm_bpf.h"

static unsigned char object[] = {
#embed <execsnoop.bpf.o>
};

static int refused, calls;

static void expect(const char *what, int64_t result, int ok)
{
	calls++;
	if (ok)
		refused++;
	else
		printf("bad_pointers: %s was accepted (%lld)\n", what, (long long)result);
}

static int sample(void *ctx, void *data, size_t size) { return 0; }

int main(void)
{
	uint32_t end = (uint32_t)__builtin_wasm_memory_size(0) * 65536u;
	char *past = (char *)(uintptr_t)end;          /* first byte past the memory */
	char *wrap = (char *)(uintptr_t)0xfffffff0u;  /* a range that wraps around */
	char *edge = (char *)(uintptr_t)(end - 3);    /* "abc" without its NUL */
	char buf[512];
	uint32_t key = 1;
	uint64_t value = 0;

	edge[0] = 'a', edge[1] = 'b', edge[2] = 'c';
	bpf_object_skel obj = wasm_load_bpf_object(object, sizeof(object));
	if (!obj) {
		printf("bad_pointers: the good object did not load\n");
		return 1;
	}
	int hash = wasm_bpf_map_fd_by_name(obj, "exec_start");
	int rb = wasm_bpf_map_fd_by_name(obj, "rb");
	if (hash < 0 || rb < 0) {
		printf("bad_pointers: no map fds\n");
		return 1;
	}

	uint64_t o;
	o = wasm_load_bpf_object(past, 64);
	expect("load past the end", (int64_t)o, o == 0);
	o = wasm_load_bpf_object(wrap, 0x20);
	expect("load wrapping around", (int64_t)o, o == 0);
	o = wasm_load_bpf_object(object, -1);
	expect("load with a negative size", (int64_t)o, o == 0);

	int r;
	r = wasm_attach_bpf_program(obj, past, NULL);
	expect("attach with the name past the end", r, r < 0);
	r = wasm_attach_bpf_program(obj, edge, NULL);
	expect("attach with an unterminated name", r, r < 0);
	r = wasm_attach_bpf_program(obj, "handle_exec", wrap);
	expect("attach with the target wrapping around", r, r < 0);
	r = wasm_attach_bpf_program(obj + 1000, "handle_exec", NULL);
	expect("attach with a bad handle", r, r < 0);
	r = wasm_attach_bpf_program_fd(obj, past, -1);
	expect("attach_fd with the name past the end", r, r < 0);
	r = wasm_attach_bpf_program_fd(obj, "handle_exec", 12345);
	expect("attach_fd with an fd it was not granted", r, r < 0);

	r = wasm_bpf_map_fd_by_name(obj, past);
	expect("map fd with the name past the end", r, r < 0);
	r = wasm_bpf_map_fd_by_name(obj, edge);
	expect("map fd with an unterminated name", r, r < 0);

	r = wasm_bpf_map_operate(hash, WB_MAP_LOOKUP, past, &value, NULL, 0);
	expect("lookup with the key past the end", r, r == -WB_EFAULT);
	r = wasm_bpf_map_operate(hash, WB_MAP_LOOKUP, &key, edge, NULL, 0);
	expect("lookup with the value crossing the end", r, r == -WB_EFAULT);
	r = wasm_bpf_map_operate(hash, WB_MAP_UPDATE, &key, wrap, NULL, 0);
	expect("update with the value wrapping around", r, r == -WB_EFAULT);
	r = wasm_bpf_map_operate(hash, WB_MAP_DELETE, wrap, NULL, NULL, 0);
	expect("delete with the key wrapping around", r, r == -WB_EFAULT);
	r = wasm_bpf_map_operate(hash, WB_MAP_NEXT_KEY, &key, NULL, past, 0);
	expect("next key into past the end", r, r == -WB_EFAULT);
	r = wasm_bpf_map_operate(9999, WB_MAP_LOOKUP, &key, &value, NULL, 0);
	expect("lookup on an fd it does not hold", r, r == -WB_EBADF);
	r = wasm_bpf_map_operate(1, WB_MAP_LOOKUP, &key, &value, NULL, 0);
	expect("lookup on stdout", r, r == -WB_EBADF);
	r = wasm_bpf_map_operate(hash, 77, &key, &value, NULL, 0);
	expect("an unknown map command", r, r == -WB_EINVAL);

	r = wb_poll(obj, rb, sample, NULL, past, 64, 0);
	expect("poll into past the end", r, r == -WB_EFAULT);
	r = wb_poll(obj, rb, sample, NULL, edge, 64, 0);
	expect("poll into a buffer crossing the end", r, r == -WB_EFAULT);
	r = wasm_bpf_buffer_poll(obj, rb, 0x7fff, 0, buf, sizeof(buf), 0);
	expect("poll with a callback index past the table", r, r == -WB_EINVAL);
	r = wb_poll(obj, hash, sample, NULL, buf, sizeof(buf), 0);
	expect("poll on a hash map", r, r < 0);
	r = wb_poll(obj, 9999, sample, NULL, buf, sizeof(buf), 0);
	expect("poll on an fd it does not hold", r, r < 0);

	r = wasm_close_bpf_object(obj + 1000);
	expect("close a bad handle", r, r < 0);
	r = wasm_close_bpf_object(obj);
	expect("close the good object (must succeed)", r, r == 0);
	r = wasm_close_bpf_object(obj);
	expect("close it twice", r, r < 0);
	r = wasm_bpf_map_operate(hash, WB_MAP_LOOKUP, &key, &value, NULL, 0);
	expect("lookup on an fd of a closed object", r, r == -WB_EBADF);

	printf("bad_pointers: %d of %d calls refused\n", refused, calls);
	return refused == calls ? 0 : 1;
}
