package stages_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The C built-in ocsf and its Go SDK twin map the same events to the same
// OCSF events, field for field, and pass or drop the others alike.
func TestOCSFParity(t *testing.T) {
	events := []pipelineEvent{
		envelope("trace_exec", 1,
			kv{"timestamp", "2026-01-02T03:04:05.123456789Z"}, kv{"mntns_id", 4026531832}, kv{"pid", 16588}, kv{"ppid", 16524},
			kv{"uid", 1000}, kv{"user", "alice"}, kv{"gid", 1000}, kv{"gid_name", "alice"}, kv{"comm", "sh"},
			kv{"filename", "/usr/bin/sh"}, kv{"ret", 0}, kv{"ret_error", ""}, kv{"args", []string{"sh", "-c", "echo hi"}}),
		// A failed exec, empty args in the middle, a path ending in /.
		envelope("trace_exec", 2, kv{"pid", 1}, kv{"ppid", 0}, kv{"uid", 0}, kv{"comm", "x"}, kv{"filename", "/opt/dir/"},
			kv{"ret", -2}, kv{"ret_error", "ENOENT"}, kv{"args", []string{"", "a", "", "b"}}),
		// Fields missing: no args, no user, no ret.
		envelope("trace_exec", 3, kv{"comm", "y"}),
		envelope("trace_open", 4, kv{"pid", 7}, kv{"uid", 0}, kv{"user", "root"}, kv{"comm", "cat"}, kv{"path", "/etc/shadow"},
			kv{"flags", "O_RDONLY"}, kv{"mode", "----------"}, kv{"ret", -13}, kv{"ret_error", "EACCES"}, kv{"mntns_id", 1}),
		envelope("trace_open", 5, kv{"pid", 8}, kv{"comm", "ls"}, kv{"path", "/"}, kv{"ret", 3}),
		envelope("trace_tcpconnect", 6, kv{"pid", 9}, kv{"uid", 1000}, kv{"comm", "curl"}, kv{"family", "AF_INET6"},
			kv{"saddr.addr", "::1"}, kv{"sport", 40000}, kv{"daddr.addr", "::1"}, kv{"dport", 443}),
		envelope("trace_tcpconnect", 7, kv{"family", "AF_INET"}, kv{"user", "uid:4242"}, kv{"saddr.addr", "127.0.0.1"}, kv{"daddr.addr", "10.0.0.1"}, kv{"dport", 80}),
		envelope("trace_signal", 8, kv{"sig", "SIGKILL"}),
		// A time with an offset, a ret that is not a number.
		{Data: encode(kv{"time", "2026-01-02T05:04:05.5+02:00"}, kv{"host", "h"}, kv{"source", "s"}, kv{"gadget", "trace_open"}, kv{"seq", 9}, kv{"ret", "x"}), Source: "s", Seq: 9},
		// Times across the calendar: before 1970, leap days (2100's is
		// not one), years past int64 nanoseconds (1677, 2263), offsets.
		{Data: encode(kv{"time", "1969-12-31T23:59:59.9995Z"}, kv{"gadget", "trace_open"}, kv{"seq", 11}), Source: "s", Seq: 11},
		{Data: encode(kv{"time", "2024-02-29T12:00:00-09:30"}, kv{"gadget", "trace_open"}, kv{"seq", 12}), Source: "s", Seq: 12},
		{Data: encode(kv{"time", "2100-02-29T12:00:00Z"}, kv{"gadget", "trace_open"}, kv{"seq", 13}), Source: "s", Seq: 13},
		{Data: encode(kv{"time", "2000-02-29T00:00:00.000000001Z"}, kv{"gadget", "trace_open"}, kv{"seq", 14}), Source: "s", Seq: 14},
		{Data: encode(kv{"time", "9999-12-31T23:59:59.999999999Z"}, kv{"gadget", "trace_open"}, kv{"seq", 15}), Source: "s", Seq: 15},
		{Data: encode(kv{"time", "0001-01-01T00:00:00Z"}, kv{"gadget", "trace_open"}, kv{"seq", 16}), Source: "s", Seq: 16},
		{Data: encode(kv{"time", "1677-09-21T00:12:43Z"}, kv{"gadget", "trace_open"}, kv{"seq", 17}), Source: "s", Seq: 17},
		{Data: encode(kv{"time", "2263-01-01T00:00:00+01:00"}, kv{"gadget", "trace_open"}, kv{"seq", 18}), Source: "s", Seq: 18},
		{Data: encode(kv{"time", "2026-1-02T03:04:05Z"}, kv{"gadget", "trace_open"}, kv{"seq", 19}), Source: "s", Seq: 19},
		// No envelope time, no seq.
		{Data: encode(kv{"gadget", "trace_open"}, kv{"path", "a/b"}), Source: "s", Seq: 10},
		// Times of one second in a row: fractions of several lengths,
		// none, past nanoseconds (Go drops the digits past the ninth),
		// empty, other zones.
		{Data: encode(kv{"time", "2026-01-02T03:04:05.5Z"}, kv{"gadget", "trace_open"}, kv{"seq", 21}), Source: "s", Seq: 21},
		{Data: encode(kv{"time", "2026-01-02T03:04:05Z"}, kv{"gadget", "trace_open"}, kv{"seq", 22}), Source: "s", Seq: 22},
		{Data: encode(kv{"time", "2026-01-02T03:04:05.123456789Z"}, kv{"gadget", "trace_open"}, kv{"seq", 23}), Source: "s", Seq: 23},
		{Data: encode(kv{"time", "2026-01-02T03:04:05.1234567891Z"}, kv{"gadget", "trace_open"}, kv{"seq", 24}), Source: "s", Seq: 24},
		{Data: encode(kv{"time", "2026-01-02T03:04:05.Z"}, kv{"gadget", "trace_open"}, kv{"seq", 25}), Source: "s", Seq: 25},
		{Data: encode(kv{"time", "2026-01-02T03:04:05.25+02:00"}, kv{"gadget", "trace_open"}, kv{"seq", 26}), Source: "s", Seq: 26},
		{Data: encode(kv{"time", "2026-01-02T03:04:05.25+02:0x"}, kv{"gadget", "trace_open"}, kv{"seq", 27}), Source: "s", Seq: 27},
		// Users in a row: the same uid with other names, with none, a
		// name without a uid, a uid's number as a name.
		envelope("trace_open", 28, kv{"uid", 1000}, kv{"user", "alice"}, kv{"path", "/a"}),
		envelope("trace_open", 29, kv{"uid", 1000}, kv{"user", "alice"}, kv{"path", "/b"}),
		envelope("trace_open", 30, kv{"uid", 1000}, kv{"user", "carol"}, kv{"path", "/c"}),
		envelope("trace_open", 34, kv{"uid", 1000}, kv{"user", "bob"}, kv{"path", "/c"}),
		envelope("trace_open", 31, kv{"uid", 1000}, kv{"path", "/d"}),
		envelope("trace_open", 32, kv{"user", "bob"}, kv{"path", "/e"}),
		envelope("trace_open", 33, kv{"uid", 1001}, kv{"user", "uid:1001"}, kv{"path", "/f"}),
		// A key twice: the first wins.
		{Data: encode(kv{"gadget", "trace_exec"}, kv{"comm", "first"}, kv{"seq", 20}, kv{"comm", "second"}, kv{"pid", 1}, kv{"pid", 2}), Source: "s", Seq: 20},
	}
	for _, params := range []map[string]any{nil, {"envelope": false, "others": "drop"}} {
		c := process(t, newStage(t, "ocsf", params, 0), events...)
		g := process(t, newStage(t, "ocsf-go", params, 0), events...)
		if diff := cmp.Diff(g, c); diff != "" {
			t.Errorf("params %v: ocsf (C) differs from ocsf-go (-go +c):\n%s", params, diff)
		}
		// One event per batch: the C stage scans each itself instead of
		// asking the host (find_keys) for the batch's fields.
		s := newStage(t, "ocsf", params, 0)
		var one []map[string]any
		for _, ev := range events {
			one = append(one, process(t, s, ev)...)
		}
		if diff := cmp.Diff(c, one); diff != "" {
			t.Errorf("params %v: ocsf one event at a time differs from ocsf on the batch (-batch +one):\n%s", params, diff)
		}
		if want := len(events) - 1; params != nil && len(c) != want {
			t.Errorf("params %v: %d events out, want %d (the signal dropped)", params, len(c), want)
		}
	}
}

// The C built-in uid-to-user and its Go SDK twin make the same events,
// byte for byte: a name already right is passed on as it came, a wrong one
// replaced in place, a missing one added after the event's fields.
func TestUIDToUserParity(t *testing.T) {
	events := []pipelineEvent{
		envelope("trace_exec", 1, kv{"uid", 1000}, kv{"user", "alice"}, kv{"comm", "sh"}), // right already
		envelope("trace_exec", 2, kv{"uid", 1000}, kv{"user", "bob"}, kv{"comm", "sh"}),   // wrong
		envelope("trace_exec", 3, kv{"user", "alice"}, kv{"uid", 1000}, kv{"comm", "sh"}), // right, before the uid
		envelope("trace_exec", 4, kv{"uid", 1000}, kv{"comm", "sh"}),                      // missing
		envelope("trace_exec", 5, kv{"comm", "sh"}, kv{"uid", 1000}),                      // missing, uid last
		envelope("trace_exec", 6, kv{"uid", 0}, kv{"user", "root"}),                       // right, the last field
		envelope("trace_exec", 7, kv{"uid", 4242}, kv{"user", "uid:4242"}),                // unknown
		envelope("trace_exec", 8, kv{"uid", 1000}, kv{"user", 1000}),                      // not a string
		envelope("trace_exec", 9, kv{"uid", "1000"}, kv{"user", "alice"}),                 // uid not a number
		envelope("trace_exec", 10, kv{"uid", 1000}, kv{"user", "alice"}, kv{"user2", "x"}),
	}
	for _, params := range []map[string]any{
		{"users": map[string]any{"0": "root", "1000": "alice"}},
		{"users": map[string]any{"0": "root", "1000": "alice"}, "unknown": "?"},
		{"users": map[string]any{"0": "root", "1000": "alice"}, "unknown": "uid:4242"},
		{"users": map[string]any{"1000": "alice"}, "target": "owner"},
		{"users": map[string]any{"1000": "alice"}, "target": "uid"},
	} {
		c := newStage(t, "uid-to-user", params, 0)
		g := newStage(t, "uid-to-user-go", params, 0)
		// Twice, in a batch of one and in one batch: the Go SDK finds the
		// first field by scanning in the first, in a table the host fills
		// in the second.
		for _, batch := range [][]pipelineEvent{events[:1], events} {
			cout, err := c.Process(t.Context(), batch, nil)
			if err != nil {
				t.Fatal(err)
			}
			gout, err := g.Process(t.Context(), batch, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(cout) != len(gout) {
				t.Fatalf("params %v: %d events from C, %d from Go", params, len(cout), len(gout))
			}
			for i := range cout {
				if string(cout[i].Data) != string(gout[i].Data) {
					t.Errorf("params %v: event %d: C made %v, Go %v", params, i, decode(t, cout[i]), decode(t, gout[i]))
				}
			}
		}
	}
}
