/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The wasm-bpf host interface as eunomia-bpf documents it (import module
 * "wasm_bpf"), declared for sluice's own test applications, plus the few
 * helpers they share. Real applications use wasm-bpf's libbpf-wasm.h; the
 * functions and their ABI are the same.
 *
 * Results are 0 or a negative errno with the kernel's numbers (as libbpf
 * returns them), not wasi-libc's: compare with the WB_E* constants below.
 */
#ifndef SLUICE_TEST_WASM_BPF_H
#define SLUICE_TEST_WASM_BPF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define WASM_BPF_IMPORT(name) __attribute__((import_module("wasm_bpf"), import_name(name)))

/* An object handle; 0 is none. */
typedef uint64_t bpf_object_skel;

/* CO-RE load an eBPF ELF from guest memory; nothing is attached. 0 on failure. */
WASM_BPF_IMPORT("wasm_load_bpf_object")
bpf_object_skel wasm_load_bpf_object(const void *obj_buf, int obj_buf_sz);

/* Detach an object's programs and free it. */
WASM_BPF_IMPORT("wasm_close_bpf_object")
int wasm_close_bpf_object(bpf_object_skel obj);

/* Attach program `name`; attach_target is NULL (or "") unless the section
 * leaves the target open (an interface for xdp, a cgroup directory). */
WASM_BPF_IMPORT("wasm_attach_bpf_program")
int wasm_attach_bpf_program(bpf_object_skel obj, const char *name, const char *attach_target);

/* Attach program `name` to a directory the guest holds (a preopened
 * cgroup); a negative fd attaches by section alone. */
WASM_BPF_IMPORT("wasm_attach_bpf_program_fd")
int wasm_attach_bpf_program_fd(bpf_object_skel obj, const char *name, int target_fd);

/* Poll a ring buffer or perf event array: each record is copied to data
 * (at most max_size bytes) and passed to the function at table index
 * sample_func, an int (*)(void *ctx, void *data, size_t size). */
WASM_BPF_IMPORT("wasm_bpf_buffer_poll")
int wasm_bpf_buffer_poll(bpf_object_skel obj, int fd, int32_t sample_func, uint32_t ctx,
			 char *data, int max_size, int timeout_ms);

/* The file descriptor of map `name`, for the poll and the map operations. */
WASM_BPF_IMPORT("wasm_bpf_map_fd_by_name")
int wasm_bpf_map_fd_by_name(bpf_object_skel obj, const char *name);

/* BPF_MAP_LOOKUP_ELEM (1), UPDATE_ELEM (2), DELETE_ELEM (3), GET_NEXT_KEY (4). */
WASM_BPF_IMPORT("wasm_bpf_map_operate")
int wasm_bpf_map_operate(int fd, int cmd, void *key, void *value, void *next_key, uint64_t flags);

enum { WB_MAP_LOOKUP = 1, WB_MAP_UPDATE = 2, WB_MAP_DELETE = 3, WB_MAP_NEXT_KEY = 4 };
enum { WB_ANY = 0, WB_NOEXIST = 1, WB_EXIST = 2 };
enum { WB_ENOENT = 2, WB_EINTR = 4, WB_EBADF = 9, WB_EFAULT = 14, WB_EINVAL = 22 };

typedef int (*wb_sample_fn)(void *ctx, void *data, size_t size);

/* A function pointer is its index in the guest's table. */
static inline int wb_poll(bpf_object_skel obj, int fd, wb_sample_fn fn, void *ctx, void *buf,
			  int size, int timeout_ms)
{
	return wasm_bpf_buffer_poll(obj, fd, (int32_t)(uintptr_t)fn, (uint32_t)(uintptr_t)ctx,
				    buf, size, timeout_ms);
}

/*
 * wb_elf_global finds the global variable `name` of an eBPF ELF object
 * (a `const volatile` setting in .rodata, say) through the symbol table,
 * so that the guest can write it before loading the object: what a
 * libbpf skeleton's rodata pointer gives. NULL when there is none.
 */
static inline uint64_t wb_u64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint32_t wb_u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint16_t wb_u16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }

static inline void *wb_elf_global(void *object, size_t size, const char *name, size_t *len)
{
	unsigned char *o = object;
	if (size < 64)
		return NULL;
	uint64_t shoff = wb_u64(o + 0x28);
	uint16_t shnum = wb_u16(o + 0x3c);
	if (shoff > size || (uint64_t)shnum * 64 > size - shoff)
		return NULL;
	for (uint16_t i = 0; i < shnum; i++) {
		unsigned char *sh = o + shoff + (uint64_t)i * 64;
		if (wb_u32(sh + 4) != 2 /* SHT_SYMTAB */)
			continue;
		uint64_t symoff = wb_u64(sh + 24), symsize = wb_u64(sh + 32);
		uint32_t strndx = wb_u32(sh + 40);
		if (strndx >= shnum || symoff > size || symsize > size - symoff)
			return NULL;
		unsigned char *strsh = o + shoff + (uint64_t)strndx * 64;
		uint64_t stroff = wb_u64(strsh + 24), strsize = wb_u64(strsh + 32);
		if (stroff > size || strsize > size - stroff)
			return NULL;
		for (uint64_t s = 0; s + 24 <= symsize; s += 24) {
			unsigned char *sym = o + symoff + s;
			uint32_t nameoff = wb_u32(sym);
			uint16_t shndx = wb_u16(sym + 6);
			if (nameoff >= strsize || shndx == 0 || shndx >= shnum)
				continue;
			if (strncmp((char *)o + stroff + nameoff, name, strsize - nameoff) != 0)
				continue;
			unsigned char *dsh = o + shoff + (uint64_t)shndx * 64;
			uint64_t value = wb_u64(sym + 8), vsize = wb_u64(sym + 16);
			uint64_t doff = wb_u64(dsh + 24), dsize = wb_u64(dsh + 32);
			if (doff > size || value > dsize || vsize > dsize - value || dsize > size - doff)
				return NULL;
			if (len)
				*len = vsize;
			return o + doff + value;
		}
	}
	return NULL;
}

#endif
