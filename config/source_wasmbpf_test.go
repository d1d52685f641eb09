package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeWasmBPFSource(t *testing.T) {
	tests := []struct {
		name string
		body string
		want *WasmBPFSource
	}{
		{
			name: "defaults",
			body: `module = "execsnoop.wasm"`,
			want: &WasmBPFSource{Module: "execsnoop.wasm", Emit: "records", MemoryLimit: DefaultWasmBPFMemoryLimit, StopGrace: DefaultWasmBPFStopGrace},
		},
		{
			name: "every attribute",
			body: `
  module       = "oci://localhost:5000/apps/execsnoop:v1"
  args         = ["-p", "1", "-d", "100"]
  emit         = "both"
  event_type   = "event"
  buffer_size  = "16MiB"
  memory_limit = "32MiB"
  stop_grace   = "3s"
  grants {
    env = { TZ = "UTC" }
    dir "/sys/fs/cgroup" {
      host = "/sys/fs/cgroup"
    }
  }`,
			want: &WasmBPFSource{
				Module: "oci://localhost:5000/apps/execsnoop:v1", Args: []string{"-p", "1", "-d", "100"}, Emit: "both",
				EventType: "event", BufferSize: 16 << 20, MemoryLimit: 32 << 20, StopGrace: 3 * time.Second,
				Grants: WasmGrants{Env: map[string]string{"TZ": "UTC"}, Dirs: []WasmDir{{Guest: "/sys/fs/cgroup", Host: "/sys/fs/cgroup"}}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := `
source "wasm_bpf" "app" {
` + tt.body + `
}
sink "stdout" "console" {}
pipeline "p" {
  sources = [source.wasm_bpf.app]
  sinks   = [sink.stdout.console]
}`
			f, diags := Parse("test.hcl", []byte(src))
			if len(diags) > 0 {
				t.Fatalf("diagnostics: %s", diags)
			}
			want := []*Source{{Type: "wasm_bpf", Name: "app", Ref: "source.wasm_bpf.app", WasmBPF: tt.want}}
			if diff := cmp.Diff(want, f.Sources, ignoreRanges); diff != "" {
				t.Errorf("sources (-want +got):\n%s", diff)
			}
			if got := f.Sources[0].WasmBPF.ModuleRange; got.Filename != "test.hcl" || got.Start.Line < 3 {
				t.Errorf("module range = %v; want the module value's", got)
			}
		})
	}
}
