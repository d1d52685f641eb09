package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/termsafe"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

var openSchema = &pipeline.Schema{Gadget: "trace_open", Fields: []pipeline.Field{
	{Name: "time", Width: 30}, {Name: "host"}, {Name: "source"}, {Name: "gadget"}, {Name: "seq"},
	{Name: "pid", Width: 7}, {Name: "comm", Width: 16}, {Name: "path", Width: 20}, {Name: "ret", Width: 4}, {Name: "flags_raw", Width: 4},
}}

func openEvent(seq uint64, comm, path string, ret int64) pipeline.Event {
	b := codec.AppendMapHeader(nil, 10)
	b = codec.AppendString(codec.AppendString(b, "time"), "2026-11-22T10:00:00.5Z")
	b = codec.AppendString(codec.AppendString(b, "host"), "h")
	b = codec.AppendString(codec.AppendString(b, "source"), "open")
	b = codec.AppendString(codec.AppendString(b, "gadget"), "trace_open")
	b = codec.AppendUint(codec.AppendString(b, "seq"), seq)
	b = codec.AppendUint(codec.AppendString(b, "pid"), 42)
	b = codec.AppendString(codec.AppendString(b, "comm"), comm)
	b = codec.AppendString(codec.AppendString(b, "path"), path)
	b = codec.AppendInt(codec.AppendString(b, "ret"), ret)
	b = codec.AppendUint(codec.AppendString(b, "flags_raw"), 0)
	return pipeline.Event{Data: b, Schema: openSchema, Source: "open", Seq: seq}
}

func TestStdoutJSON(t *testing.T) {
	var out bytes.Buffer
	s, err := NewStdout("console", &out, StdoutOptions{Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	batch := []pipeline.Event{openEvent(1, "cat", "/etc/passwd", 3), openEvent(2, "we\"ird\n", "/tmp/x", -2)}
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), out.String())
	}
	var second map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"time": "2026-11-22T10:00:00.5Z", "host": "h", "source": "open", "gadget": "trace_open", "seq": 2.0, "pid": 42.0, "comm": "we\"ird\n", "path": "/tmp/x", "ret": -2.0, "flags_raw": 0.0}
	if diff := cmp.Diff(want, second); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestStdoutTableOneSchema(t *testing.T) {
	var out bytes.Buffer
	s, err := NewStdout("console", &out, StdoutOptions{Format: "table", Schemas: []*pipeline.Schema{openSchema}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s.Write(ctx, []pipeline.Event{openEvent(1, "cat", "/etc/passwd", 3)})
	s.Write(ctx, []pipeline.Event{openEvent(2, "vim", "/a/very/long/path/that/exceeds/the/column", -2)})
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and two rows, got:\n%s", out.String())
	}
	header := strings.Fields(lines[0])
	if diff := cmp.Diff([]string{"TIME", "PID", "COMM", "PATH", "RET"}, header); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	// Columns line up: each row's PATH starts where the header's does.
	col := strings.Index(lines[0], "PATH")
	if !strings.HasPrefix(lines[1][col:], "/etc/passwd") {
		t.Errorf("row 1 misaligned:\n%s\n%s", lines[0], lines[1])
	}
	if !strings.Contains(lines[2], "…") || !strings.HasSuffix(lines[2], "-2") {
		t.Errorf("row 2 should truncate the path and end with the ret: %q", lines[2])
	}
}

func TestStdoutTableMixedSchemasAndLoss(t *testing.T) {
	var out bytes.Buffer
	other := &pipeline.Schema{Gadget: "x", Fields: []pipeline.Field{{Name: "time"}, {Name: "pid"}}}
	s, err := NewStdout("console", &out, StdoutOptions{Format: "table", Schemas: []*pipeline.Schema{openSchema, other}})
	if err != nil {
		t.Fatal(err)
	}
	loss := codec.AppendMapHeader(nil, 2)
	loss = codec.AppendString(codec.AppendString(loss, "type"), "loss")
	loss = codec.AppendUint(codec.AppendString(loss, "count"), 5)
	err = s.Write(context.Background(), []pipeline.Event{openEvent(1, "cat", "/etc/passwd", 3), {Data: loss, Schema: pipeline.LossSchema}, openEvent(2, "cat", "", 3)})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if !strings.HasSuffix(lines[0], "DETAILS") || !strings.Contains(lines[1], "path=/etc/passwd ret=3") {
		t.Errorf("mixed table:\n%s", out.String())
	}
	if lines[2] != `-- {"type":"loss","count":5}` {
		t.Errorf("loss line = %q", lines[2])
	}
	// An empty string is left out of the details rather than shown as "path=".
	if strings.Contains(lines[3], "path=") || !strings.Contains(lines[3], "ret=3") {
		t.Errorf("row with an empty path = %q", lines[3])
	}
}

func TestStdoutRejectsUnknownFormat(t *testing.T) {
	if _, err := NewStdout("c", &bytes.Buffer{}, StdoutOptions{Format: "xml"}); err == nil {
		t.Error("accepted format xml")
	}
}

// Fields a stage added beyond the schema (uid-to-user's user) still show,
// after the last column of a one-stream table and in the details column of
// a mixed one.
func TestStdoutTableShowsAddedFields(t *testing.T) {
	withUser := func(seq uint64) pipeline.Event {
		ev := openEvent(seq, "cat", "/etc/passwd", 3)
		n, body, err := codec.ReadMapHeader(ev.Data)
		if err != nil {
			t.Fatal(err)
		}
		b := codec.AppendMapHeader(nil, n+1)
		b = append(b, body...)
		b = codec.AppendString(codec.AppendString(b, "user"), "alice")
		ev.Data = b
		return ev
	}
	for _, tc := range []struct {
		name    string
		schemas []*pipeline.Schema
	}{
		{"one stream", []*pipeline.Schema{openSchema}},
		{"mixed", []*pipeline.Schema{openSchema, {Gadget: "x", Fields: []pipeline.Field{{Name: "time"}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			s, err := NewStdout("console", &out, StdoutOptions{Format: "table", Schemas: tc.schemas})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Write(context.Background(), []pipeline.Event{withUser(1)}); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) != 2 || !strings.HasSuffix(lines[1], " user=alice") || strings.Count(lines[1], "/etc/passwd") != 1 {
				t.Errorf("table:\n%s\nwant the row to end with user=alice and show the path once", out.String())
			}
		})
	}
}

// TestStdoutFields: Fields selects and orders the columns of a table and
// the keys of JSON objects; missing keys are blank or left out.
func TestStdoutFields(t *testing.T) {
	ev := openEvent(1, "cat", "/etc/hostname", 3)
	for _, tc := range []struct {
		format string
		want   []string
	}{
		{"json", []string{`{"path":"/etc/hostname","comm":"cat"}`}},
		{"table", []string{"PATH           COMM  NOPE", "/etc/hostname  cat"}},
	} {
		t.Run(tc.format, func(t *testing.T) {
			var out strings.Builder
			s, err := NewStdout("console", &out, StdoutOptions{Format: tc.format, Schemas: []*pipeline.Schema{openSchema}, Fields: []string{"path", "comm", "nope"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Write(context.Background(), []pipeline.Event{ev}); err != nil {
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
			if tc.format == "json" {
				got = got[:1]
			}
			if !slices.Equal(normalizeSpaces(got), normalizeSpaces(tc.want)) {
				t.Errorf("output %q, want %q", got, tc.want)
			}
		})
	}
}

func normalizeSpaces(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.Join(strings.Fields(l), " ")
	}
	return out
}

// TestStdoutTableHidesSchemaHiddenFields: for an Inspektor Gadget-style
// stream the readable column (error) shows and the raw number (error_raw)
// and fields a gadget's metadata hides (dev) do not, not even as details.
func TestStdoutTableHidesSchemaHiddenFields(t *testing.T) {
	schema := &pipeline.Schema{Gadget: "ig", Fields: []pipeline.Field{
		{Name: "time", Width: 30}, {Name: "host"}, {Name: "source"}, {Name: "gadget"}, {Name: "seq"},
		{Name: "error", Width: 8}, {Name: "error_raw", Width: 4, Hidden: true}, {Name: "dev", Width: 6, Hidden: true},
	}}
	b := codec.AppendMapHeader(nil, 8)
	b = codec.AppendString(codec.AppendString(b, "time"), "2026-11-22T10:00:00.5Z")
	b = codec.AppendString(codec.AppendString(b, "host"), "h")
	b = codec.AppendString(codec.AppendString(b, "source"), "ig")
	b = codec.AppendString(codec.AppendString(b, "gadget"), "ig")
	b = codec.AppendUint(codec.AppendString(b, "seq"), 1)
	b = codec.AppendString(codec.AppendString(b, "error"), "ENOENT")
	b = codec.AppendUint(codec.AppendString(b, "error_raw"), 2)
	b = codec.AppendUint(codec.AppendString(b, "dev"), 2049)
	var out bytes.Buffer
	s, err := NewStdout("console", &out, StdoutOptions{Format: "table", Schemas: []*pipeline.Schema{schema}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), []pipeline.Event{{Data: b, Schema: schema, Source: "ig", Seq: 1}}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if diff := cmp.Diff([]string{"TIME", "ERROR"}, strings.Fields(lines[0])); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	if strings.Contains(lines[1], "2049") || strings.Contains(lines[1], "error_raw") || !strings.Contains(lines[1], "ENOENT") {
		t.Errorf("row = %q, want ENOENT and nothing hidden", lines[1])
	}
}

// TestStdoutTableEscapesControlCharacters: a process controls its comm,
// its path and (through a stage) even field names; printed raw, an escape
// sequence in them rewrote the operator's terminal.
func TestStdoutTableEscapesControlCharacters(t *testing.T) {
	const evil = "\x1b]0;owned\x07\x1b[2J\u202egnp.exe\u009b31m\n"
	for _, schemas := range [][]*pipeline.Schema{{openSchema}, {openSchema, {Gadget: "x"}}} {
		var out bytes.Buffer
		s, err := NewStdout("console", &out, StdoutOptions{Format: "table", Schemas: schemas})
		if err != nil {
			t.Fatal(err)
		}
		ev := openEvent(1, evil, "/tmp/"+evil, 3)
		// A key a stage added, and an event without a schema (printed as
		// JSON).
		extra := append(append([]byte(nil), ev.Data...), 0)[:len(ev.Data)]
		extra[0]++ // one more key in the map header
		extra = codec.AppendString(codec.AppendString(extra, "user\x1b[8m"), evil)
		noSchema := pipeline.Event{Data: extra}
		if err := s.Write(context.Background(), []pipeline.Event{ev, {Data: extra, Schema: openSchema}, noSchema}); err != nil {
			t.Fatal(err)
		}
		text := out.String()
		for _, c := range text {
			if (c < 0x20 && c != '\n') || c == 0x7f || (c >= 0x80 && c < 0xa0) || c == '\u202e' {
				t.Fatalf("table output holds the raw control character %U:\n%q", c, text)
			}
		}
		if strings.Count(text, "\n") != 4 || !strings.Contains(text, `\x1b]0;owned\x07`) || !strings.Contains(text, `user\x1b[8m=`) {
			t.Errorf("want a header and three rows with the sequences escaped, got:\n%s", text)
		}
	}
}

// TestStdoutIntoRegularFile: into a regular file (stdout redirected to a
// file) the sink writes without its writer goroutine, the same bytes as
// into a pipe, and a failed write fails the batch.
func TestStdoutIntoRegularFile(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	var viaWriter bytes.Buffer
	s, err := NewStdout("console", f, StdoutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := NewStdout("ref", &viaWriter, StdoutOptions{})
	for i := range uint64(3) {
		batch := []pipeline.Event{openEvent(2*i+1, "cat", "/etc/passwd", 3), openEvent(2*i+2, "we\"ird\n", "/tmp/x", -2)}
		if err := s.Write(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		ref.Write(context.Background(), batch)
	}
	if s.writes != nil {
		t.Error("the sink started its writer goroutine for a regular file")
	}
	got, _ := os.ReadFile(f.Name())
	if !bytes.Equal(got, viaWriter.Bytes()) {
		t.Errorf("file holds\n%s\nwant\n%s", got, viaWriter.Bytes())
	}
	f.Close()
	if err := s.Write(context.Background(), []pipeline.Event{openEvent(7, "cat", "/x", 0)}); !errors.Is(err, os.ErrClosed) {
		t.Errorf("write into a closed file: %v, want os.ErrClosed", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("close: %v", err)
	}
}

// TestValueTextMatchesJSONRoundTrip: a table cell is the value's JSON
// form, strings decoded back to their text, made safe for a terminal;
// strings take a shorter way to the same text.
func TestValueTextMatchesJSONRoundTrip(t *testing.T) {
	reference := func(raw []byte) string {
		js, err := codec.AppendJSON(nil, raw)
		if err != nil {
			t.Fatal(err)
		}
		if len(js) > 0 && js[0] == '"' {
			var s string
			if err := json.Unmarshal(js, &s); err == nil {
				return termsafe.String(s)
			}
		}
		return termsafe.String(string(js))
	}
	values := [][]byte{
		codec.AppendString(nil, ""),
		codec.AppendString(nil, "bash"),
		codec.AppendString(nil, `a "quoted" \ path/with slashes`),
		codec.AppendString(nil, "tab\there, newline\nthere, bell\a, esc\x1b[31m"),
		codec.AppendString(nil, "unicode: héllo 世界 \u2028 \u202e"),
		codec.AppendString(nil, "invalid \xff\xfe utf-8"),
		codec.AppendString(nil, strings.Repeat("x", 40)),  // str8
		codec.AppendString(nil, strings.Repeat("y", 300)), // str16
		codec.AppendBytes(nil, []byte("bin \x00\x01")),
		codec.AppendInt(nil, -42),
		codec.AppendMapHeader(nil, 0),
	}
	for _, raw := range values {
		got, err := valueText(raw)
		if err != nil {
			t.Fatalf("%x: %v", raw, err)
		}
		if want := reference(raw); got != want {
			t.Errorf("%x: cell %q, want %q", raw, got, want)
		}
	}
}
