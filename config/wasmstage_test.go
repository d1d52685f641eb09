package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeWasmStage(t *testing.T) {
	tests := []struct {
		name string
		body string
		want *Stage
	}{
		{
			name: "defaults",
			body: `module = "drop-comm"`,
			want: &Stage{Type: "wasm", Name: "s", Ref: "stage.wasm.s", OnError: "pass", Wasm: &WasmStage{
				Module: "drop-comm", Timeout: DefaultWasmTimeout, MemoryLimit: DefaultWasmMemoryLimit, Workers: 1,
				Reload: WasmReload{Watch: true, RollbackWindow: DefaultWasmRollbackWindow},
			}},
		},
		{
			name: "every attribute",
			body: `
  module       = "./stages/filter.wasm"
  params       = {
    comms = ["sh", "bash"]
    limit = 10
    big   = 18446744073709551615
    ratio = 0.25
    deep  = { on = true, none = null }
  }
  timeout      = "10ms"
  memory_limit = "16MiB"
  on_error     = "dead_letter"
  dead_letter  = sink.stdout.console
  workers      = 4
  tick         = "500ms"
  stamp_version = true
  reload {
    watch = false
    poll  = "10s"
    rollback_after_errors = 5
    rollback_window       = "1m"
  }
  grants {
    env    = { TZ = "UTC", LANG = "C" }
    stdout = true
    stderr = true
    dir "/tables" {
      host = "tables"
    }
    dir "/out" {
      host     = "/var/tmp/out"
      writable = true
    }
  }`,
			want: &Stage{Type: "wasm", Name: "s", Ref: "stage.wasm.s", OnError: "dead_letter",
				DeadLetter: &Reference{Kind: "sink", Type: "stdout", Name: "console"},
				Wasm: &WasmStage{
					Module: "./stages/filter.wasm",
					Params: map[string]any{
						"comms": []any{"sh", "bash"}, "limit": int64(10), "big": uint64(18446744073709551615),
						"ratio": 0.25, "deep": map[string]any{"on": true, "none": nil},
					},
					Timeout: 10 * time.Millisecond, MemoryLimit: 16 << 20, Workers: 4, Tick: 500 * time.Millisecond,
					Reload:       WasmReload{Watch: false, Poll: 10 * time.Second, RollbackAfterErrors: 5, RollbackWindow: time.Minute},
					StampVersion: true,
					Grants: WasmGrants{
						Env: map[string]string{"TZ": "UTC", "LANG": "C"}, Stdout: true, Stderr: true,
						Dirs: []WasmDir{{Guest: "/tables", Host: "tables"}, {Guest: "/out", Host: "/var/tmp/out", Writable: true}},
					},
				}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := `
source "gadget" "exec" { gadget = "trace_exec" }
sink "stdout" "console" {}
stage "wasm" "s" {
` + tt.body + `
}
pipeline "p" {
  sources = [source.gadget.exec]
  stages  = [stage.wasm.s]
  sinks   = [sink.stdout.console]
}`
			f, diags := Parse("test.hcl", []byte(src))
			if len(diags) > 0 {
				t.Fatalf("diagnostics: %s", diags)
			}
			if diff := cmp.Diff([]*Stage{tt.want}, f.Stages, ignoreRanges); diff != "" {
				t.Errorf("stages (-want +got):\n%s", diff)
			}
			want := []Reference{{Kind: "stage", Type: "wasm", Name: "s"}}
			if diff := cmp.Diff(want, f.Pipelines[0].Stages, ignoreRanges); diff != "" {
				t.Errorf("pipeline stages (-want +got):\n%s", diff)
			}
			if got := f.Stage(want[0]); got != f.Stages[0] {
				t.Errorf("File.Stage(%s) = %v", want[0], got)
			}
		})
	}
}

func TestWasmStageRanges(t *testing.T) {
	src := `sink "stdout" "console" {}
stage "wasm" "s" {
  module = "m.wasm"
  params = { a = 1 }
  tick   = "1s"
}
stage "wasm" "bare" { module = "n.wasm" }
`
	f, _ := Parse("r.hcl", []byte(src))
	w := f.Stages[0].Wasm
	for _, c := range []struct {
		what       string
		line, col  int
		gotL, gotC int
	}{
		{"module", 3, 12, w.ModuleRange.Start.Line, w.ModuleRange.Start.Column},
		{"params", 4, 12, w.ParamsRange.Start.Line, w.ParamsRange.Start.Column},
		{"tick", 5, 12, w.TickRange.Start.Line, w.TickRange.Start.Column},
		// Without params, their range is the block header, where an init
		// failure is reported.
		{"absent params", 7, 1, f.Stages[1].Wasm.ParamsRange.Start.Line, f.Stages[1].Wasm.ParamsRange.Start.Column},
	} {
		if c.gotL != c.line || c.gotC != c.col {
			t.Errorf("%s range starts at %d:%d, want %d:%d", c.what, c.gotL, c.gotC, c.line, c.col)
		}
	}
}
