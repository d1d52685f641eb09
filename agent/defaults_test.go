package agent

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/wasmstages"
)

// The config cannot import the components that need wazero or nats (it
// stays pure), so where a component has a default or a limit of its own
// for Go callers, the config's must be the same value: this test is what
// keeps the two one. (The pipeline's defaults the config imports.)
func TestConfigDefaultsAreTheComponents(t *testing.T) {
	pairs := []struct {
		name              string
		config, component any
	}{
		{"stage timeout", config.DefaultWasmTimeout, wasmstages.DefaultTimeout},
		{"stage memory_limit", int64(config.DefaultWasmMemoryLimit), int64(wasmstages.DefaultMemoryLimit)},
		{"stage reload poll of a file", config.DefaultWasmReloadPoll, wasmstages.DefaultPoll},
		{"stage workers bound", config.MaxWasmWorkers, wasmstages.MaxWorkers},
		{"nats batch max_bytes", int64(config.DefaultNATSBatchMaxBytes), int64(sinks.DefaultBatchMaxBytes)},
		{"nats spool max_bytes", int64(config.DefaultNATSSpoolMaxBytes), int64(sinks.DefaultSpoolMaxBytes)},
	}
	for _, p := range pairs {
		if diff := cmp.Diff(p.component, p.config); diff != "" {
			t.Errorf("%s (-component +config):\n%s", p.name, diff)
		}
	}
}
