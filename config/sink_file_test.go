package config

import (
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

	// The diagnostics of bad values are pinned in testdata/diags/sink_file.hcl.
}
