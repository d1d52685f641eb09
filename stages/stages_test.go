package stages_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/pipeline/codec"
	"github.com/sluice-dev/sluice/stages"
	"github.com/sluice-dev/sluice/wasmstages"
)

func TestBuiltinNames(t *testing.T) {
	want := []string{"drop-comm", "ocsf", "rate-limit", "redact", "uid-to-user"}
	if diff := cmp.Diff(want, stages.Names()); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}
	for _, name := range want {
		b, ok := stages.Builtin(name)
		if !ok || len(b) < 8 || string(b[:4]) != "\x00asm" {
			t.Errorf("Builtin(%q) is not a Wasm module", name)
		}
	}
	for _, name := range []string{"drop-comm-go", "nope", "../stages", "drop-comm.wasm", ""} {
		if _, ok := stages.Builtin(name); ok {
			t.Errorf("Builtin(%q) found", name)
		}
	}
}

// The agent keeps its stages' modules for as long as it runs: Builtin must
// hand out the embedded bytes, not a copy on the heap.
func TestBuiltinDoesNotCopy(t *testing.T) {
	a, _ := stages.Builtin("redact")
	b, _ := stages.Builtin("redact")
	if &a[0] != &b[0] {
		t.Error("two calls of Builtin returned different copies of the module")
	}
	if n := testing.AllocsPerRun(10, func() { stages.Builtin("redact") }); n != 0 {
		t.Errorf("Builtin allocates %.0f times per call", n)
	}
}

// The C, Go and Rust versions of drop-comm must behave the same.
func TestDropCommOnSyntheticEvents(t *testing.T) {
	for _, name := range []string{"drop-comm", "drop-comm-go", "drop-comm-rs"} {
		t.Run(name, func(t *testing.T) {
			s := newStage(t, name, map[string]any{"comms": []string{"sh", "bash"}}, 0)
			got := process(t, s,
				envelope("trace_exec", 1, kv{"comm", "sh"}),
				envelope("trace_exec", 2, kv{"comm", "cat"}),
				envelope("trace_exec", 3, kv{"comm", "bash"}),
				envelope("trace_exec", 4, kv{"pid", 1}), // no comm: kept
				envelope("trace_exec", 5, kv{"comm", "shh"}),
			)
			var seqs []int64
			for _, ev := range got {
				seqs = append(seqs, toInt(ev["seq"]))
			}
			if diff := cmp.Diff([]int64{2, 4, 5}, seqs); diff != "" {
				t.Errorf("kept seqs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStageParamErrors(t *testing.T) {
	cases := []struct {
		stage  string
		params map[string]any
		want   string
	}{
		{"drop-comm", nil, "params.comms: missing"},
		{"drop-comm", map[string]any{"comms": "sh"}, "params.comms: want a list of strings"},
		{"drop-comm", map[string]any{"comms": []any{"sh", 1}}, "params.comms[1]: want a string"},
		{"drop-comm", map[string]any{"comms": []string{"sh"}, "comm": 1}, `unknown param "comm"`},
		{"drop-comm-go", map[string]any{"comm": []string{"sh"}}, `params: unknown param "comm" (known: comms)`},
		{"drop-comm-rs", map[string]any{"comm": []string{"sh"}}, `params: unknown param "comm" (known: comms)`},
		{"drop-comm-rs", nil, "params.comms: missing"},
		{"drop-comm-rs", map[string]any{"comms": "sh"}, "params.comms: want a list of strings"},
		{"drop-comm-rs", map[string]any{"comms": []any{"sh", 1}}, "params.comms[1]: want a string"},
		{"drop-comm-rs", map[string]any{"comms": []string{""}}, "params.comms[0]: an empty name matches nothing"},
		{"uid-to-user", map[string]any{"users": map[string]any{"root": "0"}}, `params.users: key "root" is not a uid`},
		{"uid-to-user-go", map[string]any{"users": map[string]any{"root": "0"}}, `params.users: key "root" is not a uid`},
		{"uid-to-user", nil, "params.users: missing"},
		{"uid-to-user", map[string]any{"users": map[string]any{"0": "root"}, "targte": "u"}, `unknown param "targte"`},
		{"uid-to-user", map[string]any{"users": map[string]any{"0": 7}}, `params.users["0"]: want a name`},
		{"redact", map[string]any{"patterns": []string{"("}}, "params.patterns[0]: error parsing regexp"},
		{"rate-limit", map[string]any{"rate": 0}, "params.rate: 0; want events per second > 0"},
		{"rate-limit", map[string]any{"rate": "fast"}, "params.rate: want a number, got string"},
		{"ocsf", map[string]any{"others": "keep"}, `params.others: "keep"; want "pass" or "drop"`},
	}
	for _, c := range cases {
		t.Run(c.stage+"/"+c.want, func(t *testing.T) {
			s, err := newStageErr(t, c.stage, c.params, 0)
			if err == nil {
				s.Close(t.Context())
				t.Fatalf("loaded with params %v", c.params)
			}
			if !isInit(err) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want ErrInit containing %q", err, c.want)
			}
		})
	}
}

// The C built-in and the Go SDK version behave the same.
func TestUIDToUserOnSyntheticEvents(t *testing.T) {
	for _, name := range []string{"uid-to-user", "uid-to-user-go"} {
		t.Run(name, func(t *testing.T) {
			s := newStage(t, name, map[string]any{
				"users": map[string]any{"0": "root", "1000": "alice"}, "unknown": "?",
			}, 0)
			got := process(t, s,
				envelope("trace_exec", 1, kv{"uid", 1000}, kv{"comm", "sh"}),
				envelope("trace_exec", 2, kv{"uid", 4242}),
				envelope("trace_exec", 3, kv{"comm", "no-uid"}),
				envelope("trace_exec", 4, kv{"uid", 0}, kv{"user", "stale"}),
			)
			if len(got) != 4 || got[0]["user"] != "alice" || got[0]["comm"] != "sh" || got[1]["user"] != "?" || got[2]["user"] != nil || got[3]["user"] != "root" {
				t.Errorf("events %v", got)
			}
			// Without unknown, an unknown uid leaves the event as it was.
			s = newStage(t, name, map[string]any{"users": map[string]any{"0": "root"}, "field": "owner", "target": "owner_name"}, 0)
			got = process(t, s,
				envelope("trace_exec", 1, kv{"owner", 0}, kv{"uid", 1000}),
				envelope("trace_exec", 2, kv{"owner", 4242}),
			)
			if len(got) != 2 || got[0]["owner_name"] != "root" || got[0]["user"] != nil || got[1]["owner_name"] != nil {
				t.Errorf("events with field/target %v", got)
			}
			// The target may be the field itself: the uid is replaced.
			s = newStage(t, name, map[string]any{"users": map[string]any{"0": "root"}, "target": "uid"}, 0)
			got = process(t, s, envelope("trace_exec", 1, kv{"uid", 0}, kv{"comm", "sh"}))
			if len(got) != 1 || got[0]["uid"] != "root" || got[0]["comm"] != "sh" || len(got[0]) != 7 {
				t.Errorf("events with target = field %v", got)
			}
		})
	}
}

func TestRedactOnSyntheticEvents(t *testing.T) {
	s := newStage(t, "redact", map[string]any{"fields": []string{"args", "filename"}, "drop": []string{"env*"}}, 0)
	got := process(t, s,
		envelope("trace_exec", 1,
			kv{"filename", "/usr/bin/curl"},
			kv{"args", []string{"curl", "-H", "Authorization: Bearer abcdefghijkl123", "https://bob:s3cret@example.com/", "--token", "tok123", "--password=hunter2"}},
			kv{"environ", "SECRET=1"},
		),
		envelope("trace_exec", 2, kv{"args", []string{"ls", "-l"}}),
	)
	want := []any{"curl", "-H", "Authorization: Bearer ****", "https://bob:****@example.com/", "--token", "****", "--password=****"}
	if diff := cmp.Diff(want, got[0]["args"]); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if got[0]["environ"] != "****" || got[0]["filename"] != "/usr/bin/curl" {
		t.Errorf("event %v", got[0])
	}
	if diff := cmp.Diff([]any{"ls", "-l"}, got[1]["args"]); diff != "" {
		t.Errorf("untouched args (-want +got):\n%s", diff)
	}
}

func TestRateLimitOnSyntheticEvents(t *testing.T) {
	s := newStage(t, "rate-limit", map[string]any{"key": []string{"comm"}, "rate": 0.001, "burst": 2}, 50*time.Millisecond)
	var in []pipelineEvent
	for i := range 6 {
		in = append(in, envelope("trace_exec", i+1, kv{"comm", "noisy"}))
	}
	in = append(in, envelope("trace_exec", 7, kv{"comm", "quiet"}))
	got := process(t, s, in...)
	var passed []string
	for _, ev := range got {
		passed = append(passed, ev["comm"].(string)+"/"+itoa(toInt(ev["seq"])))
	}
	if diff := cmp.Diff([]string{"noisy/1", "noisy/2", "quiet/7"}, passed); diff != "" {
		t.Errorf("passed (-want +got):\n%s", diff)
	}
	// The tick reports what was suppressed, once.
	sum, err := s.Tick(t.Context(), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum) != 1 {
		t.Fatalf("tick emitted %d events, want 1 summary", len(sum))
	}
	m := decode(t, sum[0])
	if m["type"] != "rate_limit" || m["comm"] != "noisy" || toInt(m["suppressed"]) != 4 || m["host"] != "node-a" || m["source"] != "src" {
		t.Errorf("summary %v", m)
	}
	if again, _ := s.Tick(t.Context(), time.Now(), nil); len(again) != 0 {
		t.Errorf("second tick emitted %d events", len(again))
	}
}

func TestOCSFPassesOthers(t *testing.T) {
	s := newStage(t, "ocsf", map[string]any{"envelope": false}, 0)
	got := process(t, s,
		envelope("trace_signal", 1, kv{"sig", "SIGKILL"}),
		envelope("trace_open", 2, kv{"pid", 7}, kv{"uid", 0}, kv{"user", "root"}, kv{"comm", "cat"}, kv{"path", "/etc/shadow"}, kv{"ret", -13}, kv{"ret_error", "EACCES"}),
	)
	if len(got) != 2 || got[0]["sig"] != "SIGKILL" {
		t.Fatalf("events %v", got)
	}
	o := got[1]
	if toInt(o["class_uid"]) != 1001 || toInt(o["type_uid"]) != 100114 || toInt(o["status_id"]) != 2 || o["status_code"] != "EACCES" {
		t.Errorf("ocsf %v", o)
	}
	if _, ok := o["host"]; ok {
		t.Errorf("envelope = false kept host: %v", o)
	}
	if toInt(o["time"]) != time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC).UnixMilli() {
		t.Errorf("time %v", o["time"])
	}
	file := o["file"].(map[string]any)
	if file["path"] != "/etc/shadow" || file["name"] != "shadow" {
		t.Errorf("file %v", file)
	}
	actor := o["actor"].(map[string]any)["process"].(map[string]any)
	if toInt(actor["pid"]) != 7 || actor["name"] != "cat" || actor["user"].(map[string]any)["name"] != "root" {
		t.Errorf("actor %v", actor)
	}
}

// The C SDK's emit path (copy fields but one, add fields, nested list) and
// whole-float params, through the real host.
func TestCSDKGuest(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "sdk", "c", "testdata", "sdk_guest.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := wasmstages.New(t.Context(), wasmstages.Config{Name: "csdk", ModuleBytes: b, Params: map[string]any{"n": 2.0}, Timeout: 10 * time.Second, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	in := []pipelineEvent{
		envelope("trace_exec", 1, kv{"comm", "sh"}, kv{"pid", 7}), envelope("trace_exec", 2, kv{"comm", "ls"}),
		envelope("trace_exec", 3, kv{"comm", "sh"}, kv{"pid", 8}), envelope("trace_exec", 4, kv{"comm", "ls"}),
	}
	out, err := s.Process(t.Context(), in, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	for _, ev := range out {
		got = append(got, decode(t, ev))
	}
	if len(got) != 4 || got[1]["comm"] != "ls" {
		t.Fatalf("events %v", got)
	}
	// SET: comm replaced, a list added, the rest as it was; a SET of what
	// the event holds passes it on as it is.
	if tags, _ := got[2]["tags"].([]any); got[2]["comm"] != "SET" || toInt(got[2]["pid"]) != 8 || len(tags) != 2 || toInt(tags[1]) != 2 || len(got[2]) != 8 {
		t.Errorf("set %v", got[2])
	}
	if !bytes.Equal(out[3].Data, in[3].Data) || out[3].Seq != 4 {
		t.Errorf("a SET of the comm the event has made %v, want the event as it was", got[3])
	}
	first := got[0]
	list, _ := first["list"].([]any)
	if first["comm"] != "CHANGED" || toInt(first["pid"]) != 7 || first["host"] != "node-a" || len(list) != 20 || toInt(list[19]) != -19 || len(first) != 8 {
		t.Errorf("emitted %v", first)
	}
	// More names to leave out than sluice_w_fields takes fail the batch
	// instead of emitting the extra keys twice.
	if _, err := s.Process(t.Context(), []pipelineEvent{envelope("trace_exec", 99, kv{"comm", "sh"})}, nil); err == nil || !strings.Contains(err.Error(), "sluice_w_fields: 17 names to leave out; at most 16") {
		t.Errorf("seq 99: err = %v", err)
	}
	if _, err := wasmstages.New(t.Context(), wasmstages.Config{Name: "csdk", ModuleBytes: b, Params: map[string]any{"n": 2.5}, Cache: cache}); !isInit(err) || !strings.Contains(err.Error(), "params.n: want a whole number") {
		t.Errorf("n = 2.5: %v", err)
	}
}

// A key whose bucket refills reports what it suppressed just before the
// event that passes again.
func TestRateLimitSummaryOnRefill(t *testing.T) {
	s := newStage(t, "rate-limit", map[string]any{"rate": 20, "burst": 1}, time.Hour)
	got := process(t, s, envelope("trace_exec", 1, kv{"comm", "a"}), envelope("trace_exec", 2, kv{"comm", "a"}), envelope("trace_exec", 3, kv{"comm", "a"}))
	if len(got) != 1 || toInt(got[0]["seq"]) != 1 {
		t.Fatalf("first batch passed %v, want seq 1 only", got)
	}
	time.Sleep(150 * time.Millisecond) // 20/s: a token is back after 50ms
	got = process(t, s, envelope("trace_exec", 4, kv{"comm", "a"}))
	if len(got) != 2 {
		t.Fatalf("after the refill: %v, want a summary and seq 4", got)
	}
	sum := got[0]
	if sum["type"] != "rate_limit" || toInt(sum["suppressed"]) != 2 || sum["comm"] != "a" || toInt(got[1]["seq"]) != 4 {
		t.Errorf("summary %v then %v", sum, got[1])
	}
	first, err1 := time.Parse(time.RFC3339Nano, sum["first"].(string))
	last, err2 := time.Parse(time.RFC3339Nano, sum["last"].(string))
	if err1 != nil || err2 != nil || last.Before(first) {
		t.Errorf("first %v last %v", sum["first"], sum["last"])
	}
}

// The realistic benchmark's secrets are all masked, and nothing else is
// changed: the prefilter must not hide a match.
func TestRedactRealisticExecs(t *testing.T) {
	s := newStage(t, "redact", nil, 0)
	in := realisticExecs(256)
	got := process(t, s, in...)
	if len(got) != len(in) {
		t.Fatalf("%d events out of %d", len(got), len(in))
	}
	masked := 0
	for i, ev := range got {
		args := fmt.Sprint(ev["args"])
		secret := i%32 == 7
		if secret {
			masked++
		}
		if has := strings.Contains(args, "****"); has != secret {
			t.Errorf("event %d: masked = %v, want %v: %s", i, has, secret, args)
		}
		for _, leak := range []string{"s3cr3t", "eyJhbGci", "ghp_aaaa", "AKIAABCD"} {
			if strings.Contains(args, leak) {
				t.Errorf("event %d: %q left in %s", i, leak, args)
			}
		}
	}
	if masked == 0 {
		t.Fatal("no secret in the sample")
	}
}

// drop-comm finds comm however an event lays it out, and the C stage,
// which has the host find comm in batches of 4 or more (find_key) and
// scans smaller ones itself, drops the same events in every batch size as
// its Go and Rust twins.
func TestDropCommFindsCommInAnyLayout(t *testing.T) {
	str8 := func(s string) []byte { return append([]byte{0xd9, byte(len(s))}, s...) }
	bin8 := func(s string) []byte { return append([]byte{0xc4, byte(len(s))}, s...) }
	fix := func(s string) []byte { return codec.AppendString(nil, s) }
	event := func(seq int, entries ...[]byte) pipelineEvent {
		b := codec.AppendMapHeader(nil, len(entries)/2+1)
		b = codec.AppendInt(codec.AppendString(b, "seq"), int64(seq))
		for _, e := range entries {
			b = append(b, e...)
		}
		return pipelineEvent{Data: b, Source: "src", Seq: uint64(seq)}
	}
	nested := codec.AppendInt(codec.AppendString(codec.AppendMapHeader(codec.AppendArrayHeader(nil, 2), 1), "comm"), 1)
	nested = codec.AppendString(nested, "sh")
	long := make([]kv, 20)
	for i := range long {
		long[i] = kv{fmt.Sprintf("field%02d", i), strings.Repeat("x", i*5)}
	}
	map16 := codec.AppendMapHeader(nil, 22)
	map16 = codec.AppendInt(codec.AppendString(map16, "seq"), 12)
	for _, f := range long {
		map16 = codec.AppendString(codec.AppendString(map16, f.k), f.v.(string))
	}
	map16 = codec.AppendString(codec.AppendString(map16, "comm"), "bash")
	in := []pipelineEvent{
		event(1, fix("comm"), fix("sh")), // dropped
		event(2, fix("args"), nested, fix("pid"), codec.AppendInt(nil, 7), fix("comm"), fix("cat")), // kept: the nested comm is not the event's
		event(3, str8("comm"), fix("sh")),                         // a str8 key: dropped
		event(4, bin8("comm"), fix("bash")),                       // a bin key: dropped
		event(5, fix("comm"), fix("cat"), fix("comm"), fix("sh")), // the first comm wins: kept
		event(6, fix("comm"), fix("sh"), fix("comm"), fix("cat")), // dropped
		event(7, fix("comm"), codec.AppendInt(nil, 5)),            // not a string: kept
		event(8, fix("comm"), str8("bash")),                       // a str8 value: dropped
		event(9, fix("com"), fix("sh"), fix("comm2"), fix("sh")),  // no comm: kept
		event(10), // no comm: kept
		{Data: encode(kv{"seq", 11}, kv{"comm", "shh"}), Source: "src", Seq: 11}, // kept
		{Data: map16, Source: "src", Seq: 12},                                    // a map16, comm 21st: dropped
	}
	for _, name := range []string{"drop-comm", "drop-comm-go", "drop-comm-rs"} {
		want := []int64{2, 5, 7, 9, 10, 11}
		t.Run(name, func(t *testing.T) {
			s := newStage(t, name, map[string]any{"comms": []string{"sh", "bash"}}, 0)
			for size := 1; size <= len(in); size++ {
				var seqs []int64
				for lo := 0; lo < len(in); lo += size {
					for _, ev := range process(t, s, in[lo:min(lo+size, len(in))]...) {
						seqs = append(seqs, toInt(ev["seq"]))
					}
				}
				if diff := cmp.Diff(want, seqs); diff != "" {
					t.Errorf("batches of %d: kept seqs (-want +got):\n%s", size, diff)
				}
			}
		})
	}
}
