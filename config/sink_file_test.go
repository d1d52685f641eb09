package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/hcl/v2"
)

func TestFileSink(t *testing.T) {
	src := `
source "gadget" "exec" { gadget = "trace_exec" }
sink "file" "audit" {
  path     = "/var/log/sluice/events-%Y-%m-%d.jsonl"
  format   = "msgpack"
  compress = "gzip"
  fsync    = "batch"
  rotate {
    max_size = "100MiB"
    max_age  = "1h"
  }
  retention {
    max_files = 10
    max_age   = "7d"
  }
}
sink "file" "plain" { path = "events.jsonl" }
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.file.audit, sink.file.plain]
}
`
	f, diags := Parse("f.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want := &FileSink{Path: "/var/log/sluice/events-%Y-%m-%d.jsonl", Format: "msgpack", Compress: "gzip", Fsync: "batch", FsyncInterval: time.Second,
		Rotate: FileRotate{MaxSize: 100 << 20, MaxAge: time.Hour}, Retention: FileRetention{MaxFiles: 10, MaxAge: 7 * 24 * time.Hour}}
	if diff := cmp.Diff(want, f.Sinks[0].File, cmpopts.IgnoreTypes(hcl.Range{})); diff != "" {
		t.Errorf("file sink (-want +got):\n%s", diff)
	}
	if r := f.Sinks[0].File.PathRange; r.Start.Line != 4 || r.Start.Column != 14 {
		t.Errorf("path range %v, want f.hcl:4:14", r)
	}
	wantPlain := &FileSink{Path: "events.jsonl", Format: "json", Compress: "none", Fsync: "interval", FsyncInterval: time.Second}
	if diff := cmp.Diff(wantPlain, f.Sinks[1].File, cmpopts.IgnoreTypes(hcl.Range{})); diff != "" {
		t.Errorf("file sink defaults (-want +got):\n%s", diff)
	}

	bad := `
sink "file" "x" {
  format = "xml"
  fsync  = "batch"
  fsync_interval = "1s"
  compress = "zip"
  rotate { max_size = 0 }
  rotate {}
  retention { max_files = -1 }
}
sink "file" "y" {}
`
	_, diags = Parse("bad.hcl", []byte(bad))
	var got []string
	for _, d := range diags {
		got = append(got, d.Summary)
	}
	for _, w := range []string{`Invalid value for "format"`, `Invalid value for "compress"`, "Unused fsync_interval", "Value must be positive", "Duplicate rotate block", "Missing required argument"} {
		found := false
		for _, g := range got {
			found = found || strings.Contains(g, w)
		}
		if !found {
			t.Errorf("no diagnostic %q among %q", w, got)
		}
	}
}
