/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Marker macros of the gadget contract, compatible with Inspektor Gadget
 * (IG): user space finds a gadget's tracers, parameters, iterators and map
 * iterators by the names of unused global variables or by BTF decl tags on
 * them, so an object built against IG's headers and one built against these
 * carry the same markers (sluice reads every form IG has emitted; see
 * docs/gadgets.md). The variables cost nothing at run time: they live in
 * BTF (and in .bss/.data/.rodata as slots no program touches).
 */
#ifndef __SLUICE_MACROS_H
#define __SLUICE_MACROS_H

#define __SLUICE_CAT_IMPL(a, b) a##b
#define __SLUICE_CAT(a, b) __SLUICE_CAT_IMPL(a, b)

/*
 * GADGET_TRACER(name, map, struct) declares that ring buffer `map` carries
 * records of `struct struct`. The typed pointer keeps the struct in BTF even
 * when no program names it, so user space can always build a decode plan.
 * IG allows one tracer per object; sluice reads several, a stream each.
 */
#define GADGET_TRACER(name, map, event_type)                           \
	const void *gadget_tracer_##name##___##map##___##event_type      \
		__attribute__((unused));                                   \
	const struct event_type *__gadget_tracer_type_##name             \
		__attribute__((unused));

/*
 * GADGET_PARAM(var) exposes the `const volatile` global `var` as a gadget
 * parameter; user space rewrites it in .rodata before loading, so the
 * verifier sees the chosen value as a constant and prunes dead branches.
 */
#define GADGET_PARAM(var) \
	const void *gadget_param_##var __attribute__((unused));

/*
 * Iterators, in the form Inspektor Gadget's headers emit today: BTF decl
 * tags (clang's btf_decl_tag) rather than names.
 *
 * GADGET_ITER(name, struct) declares iterator `name`, whose programs each
 * write elements of `struct struct` with bpf_seq_write(); its output (one
 * snapshot per run) is the union of theirs. Mark each program with
 * GADGET_ITER_MEMBER(name) before its return type, or list up to three
 * programs: GADGET_ITER(name, struct, prog1, prog2, prog3).
 * GADGET_SNAPSHOTTER is the older name of GADGET_ITER.
 *
 * Tags: ig:iter_type:<name>___<struct> on a phantom pointer (which also
 * keeps the struct in BTF) and ig:iter:<name> on each program's FUNC.
 */
#define __SLUICE_TAG(s) __attribute__((btf_decl_tag("ig:" s)))

#define __SLUICE_ITER_TYPE(name, type)                                  \
	const struct type *__ig_iter_type_##name __attribute__((unused)) \
		__SLUICE_TAG("iter_type:" #name "___" #type);

/* A tagged prototype lands the tag on the program's FUNC; the empty
 * parameter list is compatible with the typed definition that follows. */
#define __SLUICE_ITER_FWD(name, prog)                                        \
	_Pragma("clang diagnostic push")                                     \
	_Pragma("clang diagnostic ignored \"-Wdeprecated-non-prototype\"")  \
	int prog() __SLUICE_TAG("iter:" #name);                              \
	_Pragma("clang diagnostic pop")

#define __SLUICE_ITER_2(name, type) __SLUICE_ITER_TYPE(name, type)
#define __SLUICE_ITER_3(name, type, p1) \
	__SLUICE_ITER_TYPE(name, type) __SLUICE_ITER_FWD(name, p1)
#define __SLUICE_ITER_4(name, type, p1, p2) \
	__SLUICE_ITER_3(name, type, p1) __SLUICE_ITER_FWD(name, p2)
#define __SLUICE_ITER_5(name, type, p1, p2, p3) \
	__SLUICE_ITER_4(name, type, p1, p2) __SLUICE_ITER_FWD(name, p3)
#define __SLUICE_NARGS5_IMPL(_1, _2, _3, _4, _5, N, ...) N
#define __SLUICE_NARGS5(...) __SLUICE_NARGS5_IMPL(__VA_ARGS__, 5, 4, 3, 2, 1)

#define GADGET_ITER(...) \
	__SLUICE_CAT(__SLUICE_ITER_, __SLUICE_NARGS5(__VA_ARGS__))(__VA_ARGS__)
#define GADGET_ITER_MEMBER(name) __SLUICE_TAG("iter:" #name)
#define GADGET_SNAPSHOTTER(...) GADGET_ITER(__VA_ARGS__)

/*
 * GADGET_ITER_TARGET_MAP(prog, map) gives the map an iter/bpf_map_elem
 * program walks (the kernel wants it when the iterator is attached).
 */
#define GADGET_ITER_TARGET_MAP(prog, map)                                  \
	const int __ig_iter_target_map_##prog##___##map                   \
		__attribute__((unused)) __SLUICE_TAG("iter_target_map:" #prog \
						     "___" #map) = 0;

/*
 * GADGET_MAPITER(name, map) asks user space to drain hash map `map` every
 * interval and emit its entries (key and value struct fields) as one
 * snapshot: toppers, histograms, stack-keyed profiles.
 */
#define GADGET_MAPITER(name, map)                                             \
	const int __ig_mapiter_##name##___##map __attribute__((unused))     \
		__SLUICE_TAG("mapiter:" #name "___" #map) = 0;

/*
 * GADGET_OPTIONAL(prog) is a sluice extension: failing to attach program
 * `prog` (for instance sys_enter_open, which arm64 lacks) is logged as a
 * warning instead of failing the whole gadget. IG ignores the marker.
 */
#define GADGET_OPTIONAL(prog) \
	const void *gadget_optional_##prog __attribute__((unused));

#endif /* __SLUICE_MACROS_H */
