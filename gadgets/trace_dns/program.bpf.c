// SPDX-License-Identifier: Apache-2.0
/*
 * trace_dns: DNS queries and responses over UDP (IPv4 and IPv6), read by a
 * socket filter on a packet socket, with the process that asked and the
 * time the answer took.
 *
 * Fields (struct event):
 *   timestamp   gadget_timestamp            when the packet was seen
 *   mntns_id    gadget_mntns_id             the client process's
 *   pid, tid    gadget_pid, gadget_tid      the client process: the last
 *                                           one to send from the query's
 *                                           local port (0 if unknown)
 *   uid, gid    gadget_uid, gadget_gid
 *   comm        char[16]
 *   src, dst    struct gadget_l4endpoint_t  the packet's endpoints
 *   qr          enum dns_qr                 QUERY or RESPONSE
 *   id          __u16                       the DNS transaction id
 *   qtype       enum dns_qtype              A, AAAA, CNAME, MX, TXT, ...
 *   rcode       enum dns_rcode              NOERROR, NXDOMAIN, SERVFAIL,
 *                                           ... (responses)
 *   answers     __u16                       answer records (responses)
 *   latency_ns  __u64                       time from the query to this
 *                                           response (0 when the query
 *                                           was not seen)
 *   name        char[256]                   the first question's name,
 *                                           dotted, with the root's dot
 *
 * Params: dns_port (u16, default 53) is the server port that marks DNS.
 *
 * How: the socket filter sees every packet of the network namespace it
 * runs in; it keeps none (returns 0) and emits DNS messages to the ring
 * buffer. On loopback each packet passes twice (sent, received): only the
 * received copy counts. A socket filter has no process; tracepoints record
 * which process last connected (syscalls/sys_exit_connect) or sent
 * (sock/sock_send_length) a UDP socket on each local port, and the query
 * and its response are attributed to that process.
 */
#include <sluice/gadget.h>
#include <sluice/filter.h>

#define NAME_LEN 256
#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define PACKET_OUTGOING 4
#define LOOPBACK_IFINDEX 1

enum dns_qr {
	QUERY = 0,
	RESPONSE = 1,
};

enum dns_qtype {
	A = 1,
	NS = 2,
	CNAME = 5,
	SOA = 6,
	PTR = 12,
	MX = 15,
	TXT = 16,
	AAAA = 28,
	SRV = 33,
	NAPTR = 35,
	DS = 43,
	DNSKEY = 48,
	SVCB = 64,
	HTTPS = 65,
	ANY = 255,
	CAA = 257,
};

enum dns_rcode {
	NOERROR = 0,
	FORMERR = 1,
	SERVFAIL = 2,
	NXDOMAIN = 3,
	NOTIMP = 4,
	REFUSED = 5,
};

struct event {
	gadget_timestamp timestamp;
	gadget_mntns_id mntns_id;
	gadget_pid pid;
	gadget_tid tid;
	gadget_uid uid;
	gadget_gid gid;
	gadget_comm comm[TASK_COMM_LEN];
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	enum dns_qr qr;
	__u16 id;
	enum dns_qtype qtype;
	enum dns_rcode rcode;
	__u16 answers;
	__u64 latency_ns;
	char name[NAME_LEN];
};

const volatile __u16 dns_port = 53;
GADGET_PARAM(dns_port);

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(trace_dns, events, event);

/* The process that last sent from a local UDP port. */
struct owner {
	gadget_mntns_id mntns_id;
	__u32 pid, tid, uid, gid;
	char comm[TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u16); /* local port, host order */
	__type(value, struct owner);
} udp_owners SEC(".maps");

/* A query waiting for its response: client port and transaction id. */
struct query_key {
	__u16 port;
	__u16 id;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct query_key);
	__type(value, __u64); /* boot ns */
} queries SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} scratch SEC(".maps");

/* Context of sock/sock_send_length. */
struct trace_event_raw_sock_msg_length___sluice {
	struct trace_entry ent;
	void *sk;
	__u16 family;
	__u16 protocol;
	int ret;
	int flags;
} __attribute__((preserve_access_index));

/* record_owner notes the current process as the owner of a UDP socket's
 * local port. */
static __always_inline void record_owner(struct sock *sk)
{
	struct owner o = {};
	__u64 id, ugid;
	__u16 port;

	port = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (!port)
		return;
	id = bpf_get_current_pid_tgid();
	ugid = bpf_get_current_uid_gid();
	o.pid = id >> 32;
	o.tid = (__u32)id;
	o.uid = (__u32)ugid;
	o.gid = ugid >> 32;
	o.mntns_id = gadget_get_current_mntns_id();
	bpf_get_current_comm(o.comm, sizeof(o.comm));
	bpf_map_update_elem(&udp_owners, &port, &o, BPF_ANY);
}

/* Sends: any UDP socket, after the send (its port is bound by then). */
SEC("tracepoint/sock/sock_send_length")
int trace_dns_udp_send(struct trace_event_raw_sock_msg_length___sluice *ctx)
{
	if (ctx->protocol != IPPROTO_UDP || ctx->ret <= 0)
		return 0;
	record_owner(ctx->sk);
	return 0;
}

/* Connects: resolvers connect their UDP socket before the first query,
 * which binds its port, so the query itself is attributed. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);   /* tid */
	__type(value, __s32); /* fd */
} connecting SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_connect")
int trace_dns_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__s32 fd = ctx->args[0];

	bpf_map_update_elem(&connecting, &tid, &fd, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int trace_dns_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct sock *sk;
	__s32 *fd;

	fd = bpf_map_lookup_elem(&connecting, &tid);
	if (!fd)
		return 0;
	if (ctx->ret == 0) {
		sk = gadget_get_current_sock(*fd);
		if (sk && BPF_CORE_READ(sk, sk_protocol) == IPPROTO_UDP)
			record_owner(sk);
	}
	bpf_map_delete_elem(&connecting, &tid);
	return 0;
}

/* parse_name turns the question's wire-format name at off into dotted
 * text: "\x07example\x03com\x00" -> "example.com.". */
static __always_inline void parse_name(struct __sk_buff *skb, __u32 off, char *out)
{
	__u8 buf[NAME_LEN];
	__u32 avail = skb->len > off ? skb->len - off : 0;
	__u32 next = 0;

	if (avail < 1)
		return;
	if (avail > NAME_LEN)
		avail = NAME_LEN;
	/* In [1, NAME_LEN] by arithmetic, which the verifier follows where
	 * it loses the comparisons above. */
	avail = ((avail - 1) & (NAME_LEN - 1)) + 1;
	if (bpf_skb_load_bytes(skb, off, buf, avail))
		return;
	for (__u32 i = 0; i < NAME_LEN - 1; i++) {
		if (i >= avail)
			break;
		if (i == next) {
			__u8 len = buf[i];

			if (len == 0 || len > 63) {
				/* The root's dot ends the name. */
				if (len == 0)
					out[i > 0 ? i - 1 : 0] = '.';
				return;
			}
			next = i + len + 1;
			if (i > 0)
				out[i - 1] = '.';
			continue;
		}
		if (i > 0)
			out[i - 1] = buf[i];
	}
}

SEC("socket")
int trace_dns_packets(struct __sk_buff *skb)
{
	struct event *e;
	struct owner *o;
	__u32 zero = 0, l4;
	__u16 sport, dport, flags, client_port;
	__u8 proto, ihl;
	__u16 ethproto = bpf_ntohs(skb->protocol);
	struct query_key qk;

	/* On loopback each packet passes twice: keep the received copy. */
	if (skb->ifindex == LOOPBACK_IFINDEX && skb->pkt_type == PACKET_OUTGOING)
		return 0;
	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	if (ethproto == ETH_P_IP) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ihl, 1) ||
		    bpf_skb_load_bytes(skb, ETH_HLEN + 9, &proto, 1))
			return 0;
		if (proto != IPPROTO_UDP)
			return 0;
		l4 = ETH_HLEN + (ihl & 0xf) * 4;
		bpf_skb_load_bytes(skb, ETH_HLEN + 12, &e->src.addr_raw.v4, 4);
		bpf_skb_load_bytes(skb, ETH_HLEN + 16, &e->dst.addr_raw.v4, 4);
		e->src.version = e->dst.version = 4;
	} else if (ethproto == ETH_P_IPV6) {
		/* No extension headers: DNS over UDP does not use them. */
		if (bpf_skb_load_bytes(skb, ETH_HLEN + 6, &proto, 1))
			return 0;
		if (proto != IPPROTO_UDP)
			return 0;
		l4 = ETH_HLEN + 40;
		bpf_skb_load_bytes(skb, ETH_HLEN + 8, e->src.addr_raw.v6, 16);
		bpf_skb_load_bytes(skb, ETH_HLEN + 24, e->dst.addr_raw.v6, 16);
		e->src.version = e->dst.version = 6;
	} else {
		return 0;
	}
	if (bpf_skb_load_bytes(skb, l4, &sport, 2) || bpf_skb_load_bytes(skb, l4 + 2, &dport, 2))
		return 0;
	sport = bpf_ntohs(sport);
	dport = bpf_ntohs(dport);
	if (dport == dns_port) {
		e->qr = QUERY;
		client_port = sport;
	} else if (sport == dns_port) {
		e->qr = RESPONSE;
		client_port = dport;
	} else {
		return 0;
	}
	/* The DNS header: id, flags, qdcount, ancount, nscount, arcount. */
	if (bpf_skb_load_bytes(skb, l4 + 8, &e->id, 2) || bpf_skb_load_bytes(skb, l4 + 10, &flags, 2) ||
	    bpf_skb_load_bytes(skb, l4 + 14, &e->answers, 2))
		return 0;
	e->id = bpf_ntohs(e->id);
	flags = bpf_ntohs(flags);
	e->answers = bpf_ntohs(e->answers);
	if ((flags >> 15) != e->qr)
		return 0; /* a port-53 packet that is not what its direction says */
	e->rcode = flags & 0xf;

	o = bpf_map_lookup_elem(&udp_owners, &client_port);
	if (o) {
		if (gadget_should_discard_data(o->mntns_id, o->pid, o->tid, o->comm, o->uid, o->gid))
			return 0;
		e->mntns_id = o->mntns_id;
		e->pid = o->pid;
		e->tid = o->tid;
		e->uid = o->uid;
		e->gid = o->gid;
		__builtin_memcpy(e->comm, o->comm, sizeof(e->comm));
	} else if (gadget_should_discard_data(0, 0, 0, "", GADGET_INVALID_ID, GADGET_INVALID_ID)) {
		return 0;
	}

	e->timestamp = bpf_ktime_get_boot_ns();
	e->src.port = sport;
	e->dst.port = dport;
	e->src.proto_raw = e->dst.proto_raw = IPPROTO_UDP;
	qk.port = client_port;
	qk.id = e->id;
	if (e->qr == QUERY) {
		bpf_map_update_elem(&queries, &qk, &e->timestamp, BPF_ANY);
		e->answers = 0;
		e->rcode = 0;
	} else {
		__u64 *start = bpf_map_lookup_elem(&queries, &qk);

		if (start) {
			e->latency_ns = e->timestamp - *start;
			bpf_map_delete_elem(&queries, &qk);
		}
	}
	parse_name(skb, l4 + 20, e->name);
	{
		__u32 qoff = l4 + 20;
		__u8 len = 0;

		/* The type follows the name: walk its labels again. */
		for (int i = 0; i < 32; i++) {
			if (bpf_skb_load_bytes(skb, qoff, &len, 1))
				break;
			if (len == 0 || len > 63)
				break;
			qoff += len + 1;
		}
		if (len == 0) {
			__u16 qtype;

			if (!bpf_skb_load_bytes(skb, qoff + 1, &qtype, 2))
				e->qtype = bpf_ntohs(qtype);
		}
	}
	gadget_output_buf(skb, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
