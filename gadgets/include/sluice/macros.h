/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Marker macros of the gadget contract, name-compatible with Inspektor
 * Gadget (IG): user space finds a gadget's tracers, parameters, snapshotters
 * and map iterators by the names of unused global variables, so an object
 * built against IG's headers and one built against these carry the same
 * markers. The variables cost nothing at run time: they live in BTF (and in
 * .bss/.data as 8-byte slots no program touches).
 */
#ifndef __SLUICE_MACROS_H
#define __SLUICE_MACROS_H

#define __SLUICE_CAT_IMPL(a, b) a##b
#define __SLUICE_CAT(a, b) __SLUICE_CAT_IMPL(a, b)
#define __SLUICE_NARGS_IMPL(_1, _2, _3, N, ...) N
#define __SLUICE_NARGS(...) __SLUICE_NARGS_IMPL(__VA_ARGS__, 3, 2, 1)

/*
 * GADGET_TRACER(name, map, struct) declares that ring buffer `map` carries
 * records of `struct struct`. The typed pointer keeps the struct in BTF even
 * when no program names it, so user space can always build a decode plan.
 * IG allows one tracer per object; so does sluice.
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
 * GADGET_SNAPSHOTTER(name, struct, prog1[, prog2[, prog3]]) declares that
 * the iterator programs listed each produce elements of `struct struct`;
 * the snapshot is the union of their output.
 */
#define __SLUICE_SNAP_1(name, type, p1) \
	const void *gadget_snapshotter_##name##___##type##___##p1 __attribute__((unused));
#define __SLUICE_SNAP_2(name, type, p1, p2)                                 \
	const void *gadget_snapshotter_##name##___##type##___##p1##___##p2 \
		__attribute__((unused));
#define __SLUICE_SNAP_3(name, type, p1, p2, p3)                                      \
	const void *gadget_snapshotter_##name##___##type##___##p1##___##p2##___##p3 \
		__attribute__((unused));
#define GADGET_SNAPSHOTTER(name, type, ...)                                  \
	const struct type *unusedevent_##name##___##type __attribute__((unused)); \
	__SLUICE_CAT(__SLUICE_SNAP_, __SLUICE_NARGS(__VA_ARGS__))(name, type, __VA_ARGS__)

/*
 * GADGET_MAPITER(name, map) asks user space to drain hash map `map`
 * periodically and emit its entries as events.
 */
#define GADGET_MAPITER(name, map) \
	const void *gadget_mapiter_##name##___##map __attribute__((unused));

/*
 * GADGET_OPTIONAL(prog) is a sluice extension: failing to attach program
 * `prog` (for instance sys_enter_open, which arm64 lacks) is logged as a
 * warning instead of failing the whole gadget. IG ignores the marker.
 */
#define GADGET_OPTIONAL(prog) \
	const void *gadget_optional_##prog __attribute__((unused));

#endif /* __SLUICE_MACROS_H */
