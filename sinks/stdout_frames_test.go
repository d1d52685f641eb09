package sinks

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

var topSchema = &pipeline.Schema{Gadget: "top", Type: "stats", Fields: []pipeline.Field{
	{Name: "time", Width: 30}, {Name: "host"}, {Name: "source"}, {Name: "gadget"}, {Name: "seq"},
	{Name: "snapshot", Hidden: true}, {Name: "snapshot_rows", Hidden: true},
	{Name: "comm", Width: 8}, {Name: "bytes", Width: 8}, {Name: "bytes_raw", Hidden: true},
	{Name: "latency", Kind: pipeline.FieldList, Histogram: "log2", Unit: "usecs"},
}}

func topEvent(seq, snapshot, rows uint64, comm string, bytesRaw uint64, hist ...uint64) pipeline.Event {
	b := codec.AppendMapHeader(nil, 11)
	b = codec.AppendString(codec.AppendString(b, "time"), "2026-11-22T10:00:00.5Z")
	b = codec.AppendString(codec.AppendString(b, "host"), "h")
	b = codec.AppendString(codec.AppendString(b, "source"), "top")
	b = codec.AppendString(codec.AppendString(b, "gadget"), "top")
	b = codec.AppendUint(codec.AppendString(b, "seq"), seq)
	b = codec.AppendUint(codec.AppendString(b, "snapshot"), snapshot)
	b = codec.AppendUint(codec.AppendString(b, "snapshot_rows"), rows)
	b = codec.AppendString(codec.AppendString(b, "comm"), comm)
	b = codec.AppendString(codec.AppendString(b, "bytes"), "x")
	b = codec.AppendUint(codec.AppendString(b, "bytes_raw"), bytesRaw)
	b = codec.AppendArrayHeader(codec.AppendString(b, "latency"), len(hist))
	for _, h := range hist {
		b = codec.AppendUint(b, h)
	}
	return pipeline.Event{Data: b, Schema: topSchema, Source: "top", Seq: seq}
}

// TestStdoutFramesSortLimitAndHistograms: a snapshot is drawn once its
// last row arrives, sorted by the number behind a readable field (-bytes),
// cut to --max-rows, each histogram drawn as bars under its row; a
// snapshot overtaken by the next one (a stage dropped a row) is drawn
// then, and Close draws what is left.
func TestStdoutFramesSortLimitAndHistograms(t *testing.T) {
	var out bytes.Buffer
	s, err := NewStdout("console", &out, StdoutOptions{Format: "table", Schemas: []*pipeline.Schema{topSchema}, Sort: []SortKey{{Field: "bytes", Desc: true}}, MaxRows: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s.Write(ctx, []pipeline.Event{topEvent(1, 1, 3, "small", 10, 0, 2), topEvent(2, 1, 3, "big", 3000)})
	if out.Len() != 0 {
		t.Fatalf("drew an incomplete snapshot:\n%s", out.String())
	}
	s.Write(ctx, []pipeline.Event{topEvent(3, 1, 3, "mid", 200, 1, 0, 4)})
	want := `-- top stats: snapshot 1, 3 rows at ` + clockTime("2026-11-22T10:00:00.5Z") + `
TIME         COMM     BYTES
` + clockTime("2026-11-22T10:00:00.5Z") + ` big      x
                   usecs : no samples
` + clockTime("2026-11-22T10:00:00.5Z") + ` mid      x
                   usecs : count    distribution
         0 -> 1          : 1        |**********                              |
         2 -> 3          : 0        |                                        |
         4 -> 7          : 4        |****************************************|
-- 1 more rows (--max-rows 2)
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("frame (-want +got):\n%s", diff)
	}
	out.Reset()
	s.Write(ctx, []pipeline.Event{topEvent(4, 2, 2, "lone", 1)})
	s.Write(ctx, []pipeline.Event{topEvent(5, 3, 1, "next", 5)})
	if got := out.String(); !strings.Contains(got, "snapshot 2, 1 rows") || !strings.Contains(got, "snapshot 3, 1 rows") || strings.Index(got, "lone") > strings.Index(got, "next") {
		t.Errorf("an overtaken snapshot is drawn before the next:\n%s", got)
	}
	out.Reset()
	s.Write(ctx, []pipeline.Event{topEvent(6, 4, 5, "partial", 1)})
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "partial") {
		t.Errorf("Close did not draw the incomplete snapshot:\n%s", out.String())
	}
}

func TestStdoutFramesRedrawAndSortErrors(t *testing.T) {
	var out bytes.Buffer
	if _, err := NewStdout("console", &out, StdoutOptions{Format: "table", Schemas: []*pipeline.Schema{topSchema}, Sort: []SortKey{{Field: "nope"}}}); err == nil || !strings.Contains(err.Error(), `sort by "nope"`) || !strings.Contains(err.Error(), "comm, bytes") {
		t.Errorf("sorting by a field no snapshot has: %v, want an error naming it and the fields", err)
	}
	// A key only some outputs have sorts those and leaves the others.
	other := &pipeline.Schema{Type: "other", Fields: []pipeline.Field{{Name: "snapshot"}, {Name: "snapshot_rows"}, {Name: "x"}}}
	s, err := NewStdout("console", &out, StdoutOptions{Format: "table", Schemas: []*pipeline.Schema{topSchema, other}, Redraw: true, Sort: []SortKey{{Field: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), []pipeline.Event{topEvent(1, 1, 2, "a", 1), topEvent(2, 1, 2, "b", 2)}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "\x1b[H\x1b[2J") {
		t.Errorf("a redrawn frame starts with %q", out.String()[:min(8, out.Len())])
	}
	if _, err := ParseSortKeys("-bytes, pid"); err != nil {
		t.Error(err)
	}
	if keys, _ := ParseSortKeys("-bytes,pid"); !cmp.Equal(keys, []SortKey{{"bytes", true}, {"pid", false}}) {
		t.Errorf("ParseSortKeys = %v", keys)
	}
	if _, err := ParseSortKeys("-"); err == nil {
		t.Error("ParseSortKeys accepted a key with no field")
	}
}
