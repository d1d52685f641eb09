package main

import (
	"testing"
	"time"

	"github.com/sluice-dev/sluice/sdk/go/sluice"
)

func execEvent() []byte {
	var w sluice.Writer
	w.BeginMap()
	for _, f := range []struct {
		k string
		v any
	}{
		{"time", "2026-12-01T10:27:32.530410107Z"}, {"host", "vm"}, {"source", "exec"}, {"gadget", "trace_exec"},
		{"seq", 77}, {"timestamp", "2026-12-01T10:27:32.530410107Z"}, {"timestamp_raw", 1670079468483},
		{"mntns_id", 4026531832}, {"pid", 16588}, {"ppid", 16524}, {"uid", 1000}, {"user", "alice"},
		{"gid", 1000}, {"gid_name", "alice"}, {"comm", "sh"}, {"filename", "/bin/sh"}, {"ret", 0},
		{"ret_error", ""}, {"args", []string{"sh", "-c", "some args"}},
	} {
		w.Key(f.k).Any(f.v)
	}
	w.EndMap()
	return append([]byte(nil), w.Bytes()...)
}

// The stage's own test, natively: InitForTest and ProcessForTest drive the
// handlers as the host does, and the SDK's Value reads the result.
func TestMapsExecToProcessActivity(t *testing.T) {
	if err := sluice.InitForTest(nil); err != nil {
		t.Fatal(err)
	}
	var w sluice.Writer
	w.BeginMap().Key("gadget").String("trace_signal").Key("sig").String("SIGKILL").EndMap()
	signal := append([]byte(nil), w.Bytes()...)
	res, err := sluice.ProcessForTest([][]byte{execEvent(), signal})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Keep || res[0].Index != 0 || !res[1].Keep || res[1].Index != 1 {
		t.Fatalf("results %+v, want the exec mapped and the signal passed on", res)
	}
	o := sluice.RawValue(res[0].Event)
	str := func(v sluice.Value) string { s, _ := v.Str(); return s }
	num := func(v sluice.Value) int64 { n, _ := v.Int(); return n }
	proc := o.Get("process")
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"class_uid", num(o.Get("class_uid")), int64(1007)},
		{"type_uid", num(o.Get("type_uid")), int64(100701)},
		{"type_name", str(o.Get("type_name")), "Process Activity: Launch"},
		{"status", str(o.Get("status")), "Success"},
		{"time", num(o.Get("time")), time.Date(2026, 12, 1, 10, 27, 32, 530410107, time.UTC).UnixMilli()},
		{"metadata.uid", str(o.Get("metadata").Get("uid")), "vm/exec/77"},
		{"process.cmd_line", str(proc.Get("cmd_line")), "sh -c some args"},
		{"process.file.name", str(proc.Get("file").Get("name")), "sh"},
		{"process.user.name", str(proc.Get("user").Get("name")), "alice"},
		{"actor.process.pid", num(o.Get("actor").Get("process").Get("pid")), int64(16524)},
		{"host (envelope)", str(o.Get("host")), "vm"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func BenchmarkOCSFNative(b *testing.B) {
	if err := sluice.InitForTest(nil); err != nil {
		b.Fatal(err)
	}
	batch := make([][]byte, 256)
	for i := range batch {
		batch[i] = execEvent()
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sluice.ProcessForTest(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*256), "ns/event")
}
