// SPDX-License-Identifier: Apache-2.0
/*
 * Layouts, no programs: one global of each type, so the types are in the
 * object's BTF as well as in its DWARF, and a test can check that sluice's
 * DWARF-to-BTF conversion gives the layout clang's own BTF gives
 * (bitfields, anonymous members, typedefs of anonymous structs, enums,
 * wide integers, multi-dimensional arrays, pointers to self); and
 * const volatile options of every type a parameter can have.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

enum colour { RED = 1, GREEN = 2, BLUE = 4 };
enum delta { DOWN = -1, SAME = 0, UP = 1 };

typedef struct {
	__u16 a;
	__u8 b[3];
} anon_t;

struct node {
	struct node *next;
	__u32 value;
};

struct layouts {
	__u8 small;
	__u64 big;
	unsigned int flag : 1;
	unsigned int level : 3;
	int signed_bits : 5;
	__u64 wide_bits : 40;
	enum colour colour;
	enum delta delta;
	union {
		__u32 v4;
		__u8 v6[16];
	};
	struct {
		__u16 x;
		__u16 y;
	} point;
	anon_t anon;
	char grid[3][4];
	unsigned __int128 u128;
	bool ok;
	struct node *head;
	const volatile __u32 cv;
	char tail[];
};

struct layouts layouts_global;
anon_t anon_global;
struct node node_global;

/* Options as libbpf-tools declare them: each settable before load. */
const volatile enum colour colour_opt = GREEN;
const volatile enum delta delta_opt = DOWN;
const volatile char name_opt[8] = "abc";
const volatile bool flag_opt = true;
const volatile __s64 neg_opt = -5;
const volatile __u16 port_opt = 8080;
/* Not a parameter: a struct. */
const volatile struct node node_opt = {};

char LICENSE[] SEC("license") = "GPL";
