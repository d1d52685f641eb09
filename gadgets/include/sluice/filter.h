/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Common kernel-side filters: a gadget that includes this header and calls
 * gadget_should_discard_data_current() (or gadget_should_discard_data()
 * with the fields of the process an event is about) before it reserves a
 * record lets user space select events by pid, tid, uid, gid, comm, mount
 * namespace set and cgroup set. A discarded event costs no ring buffer
 * space: the check runs before the reserve.
 *
 * The names are Inspektor Gadget's (targ_pid, ..., gadget_filter_by_mntns
 * and gadget_mntns_filter_map, gadget_filter_by_cgroup and
 * gadget_cgroup_filter_map), so user space fills the filters of a gadget
 * built against either header set the same way. Two sluice extensions
 * follow the same pattern and are optional for user space:
 *   - gadget_filter_exclude_pid drops one process's events (the agent's
 *     own, by default: its reads of /proc and its connections are noise);
 *   - gadget_filter_discarded counts discarded events per CPU, which the
 *     agent reports as filtered in the kernel.
 *
 * Every setting is a `const volatile` global rewritten before load, so the
 * verifier sees the unset filters as constants and prunes them: a filter
 * nobody asked for costs nothing. Users space terms: pid is the tgid, tid
 * the kernel's pid.
 */
#ifndef __SLUICE_FILTER_H
#define __SLUICE_FILTER_H

#include <bpf/bpf_helpers.h>
#include <sluice/macros.h>
#include <sluice/types.h>
#include <sluice/common.h>

#define GADGET_INVALID_ID ((__u32)-1)
#define GADGET_FILTER_MAX_MNTNS 1024
#define GADGET_FILTER_MAX_CGROUPS 1024

const volatile gadget_pid targ_pid = 0;
GADGET_PARAM(targ_pid);
const volatile gadget_tid targ_tid = 0;
GADGET_PARAM(targ_tid);
const volatile gadget_uid targ_uid = GADGET_INVALID_ID;
GADGET_PARAM(targ_uid);
const volatile gadget_gid targ_gid = GADGET_INVALID_ID;
GADGET_PARAM(targ_gid);
const volatile gadget_comm targ_comm[TASK_COMM_LEN] = {};
GADGET_PARAM(targ_comm);

/* Set by user space together with the map's contents. */
const volatile bool gadget_filter_by_mntns = false;
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, gadget_mntns_id);
	__type(value, __u32);
	__uint(max_entries, GADGET_FILTER_MAX_MNTNS);
} gadget_mntns_filter_map SEC(".maps");

const volatile bool gadget_filter_by_cgroup = false;
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, __u8);
	__uint(max_entries, GADGET_FILTER_MAX_CGROUPS);
} gadget_cgroup_filter_map SEC(".maps");

/* sluice extensions. */
const volatile gadget_pid gadget_filter_exclude_pid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} gadget_filter_discarded SEC(".maps");

static __always_inline bool __sluice_discard(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&gadget_filter_discarded, &zero);

	/* Atomic for the same reason as the lost-samples counter: sleepable
	 * syscall tracepoints may interleave on one CPU. */
	if (n)
		__sync_fetch_and_add(n, 1);
	return true;
}

static __always_inline bool gadget_should_discard_mntns_id(gadget_mntns_id mntns_id)
{
	return gadget_filter_by_mntns &&
	       !bpf_map_lookup_elem(&gadget_mntns_filter_map, &mntns_id);
}

static __always_inline bool gadget_should_discard_cgroup_id(__u64 cgroup_id)
{
	return gadget_filter_by_cgroup &&
	       !bpf_map_lookup_elem(&gadget_cgroup_filter_map, &cgroup_id);
}

static __always_inline bool gadget_should_discard_pid(gadget_pid pid)
{
	return (targ_pid != 0 && targ_pid != pid) ||
	       (gadget_filter_exclude_pid != 0 && gadget_filter_exclude_pid == pid);
}

static __always_inline bool gadget_should_discard_tid(gadget_tid tid)
{
	return targ_tid != 0 && targ_tid != tid;
}

static __always_inline bool gadget_should_discard_uid(gadget_uid uid)
{
	return targ_uid != GADGET_INVALID_ID && targ_uid != uid;
}

static __always_inline bool gadget_should_discard_gid(gadget_gid gid)
{
	return targ_gid != GADGET_INVALID_ID && targ_gid != gid;
}

static __always_inline bool gadget_should_discard_comm(const char *comm)
{
	if (targ_comm[0] == '\0')
		return false;
	for (int i = 0; i < TASK_COMM_LEN; i++) {
		if (comm[i] != targ_comm[i])
			return true;
		if (comm[i] == '\0')
			break;
	}
	return false;
}

/*
 * gadget_should_discard_data reports (and counts) whether an event about
 * the process with these fields is filtered out. Use it where the event is
 * about another task than the current one (a socket closed in softirq
 * context, with the owner recorded earlier). The cgroup filter does not
 * apply: only the current task's cgroup is known here.
 */
static __always_inline bool
gadget_should_discard_data(gadget_mntns_id mntns_id, gadget_pid pid,
			   gadget_tid tid, const char *comm, gadget_uid uid,
			   gadget_gid gid)
{
	if (gadget_should_discard_mntns_id(mntns_id) ||
	    gadget_should_discard_pid(pid) || gadget_should_discard_tid(tid) ||
	    gadget_should_discard_uid(uid) || gadget_should_discard_gid(gid) ||
	    gadget_should_discard_comm(comm))
		return __sluice_discard();
	return false;
}

/*
 * gadget_should_discard_data_current reports (and counts) whether an event
 * about the current task is filtered out. It reads only what an active
 * filter needs, cheapest first.
 */
static __always_inline bool gadget_should_discard_data_current(void)
{
	if (targ_pid != 0 || targ_tid != 0 || gadget_filter_exclude_pid != 0) {
		__u64 pid_tgid = bpf_get_current_pid_tgid();

		if (gadget_should_discard_pid(pid_tgid >> 32) ||
		    gadget_should_discard_tid((__u32)pid_tgid))
			return __sluice_discard();
	}
	if (targ_uid != GADGET_INVALID_ID || targ_gid != GADGET_INVALID_ID) {
		__u64 uid_gid = bpf_get_current_uid_gid();

		if (gadget_should_discard_uid((__u32)uid_gid) ||
		    gadget_should_discard_gid(uid_gid >> 32))
			return __sluice_discard();
	}
	if (gadget_filter_by_mntns &&
	    gadget_should_discard_mntns_id(gadget_get_current_mntns_id()))
		return __sluice_discard();
	if (gadget_filter_by_cgroup &&
	    gadget_should_discard_cgroup_id(bpf_get_current_cgroup_id()))
		return __sluice_discard();
	if (targ_comm[0] != '\0') {
		char comm[TASK_COMM_LEN];

		bpf_get_current_comm(comm, sizeof(comm));
		if (gadget_should_discard_comm(comm))
			return __sluice_discard();
	}
	return false;
}

#endif /* __SLUICE_FILTER_H */
