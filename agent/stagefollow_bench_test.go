package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/registrytest"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/wasmstages"
)

// BenchmarkDigestToServing measures a followed tag's new digest seen ->
// the new version serving: pulling the image by digest into the store
// (allow-list, signature policy off), reading the module, compiling it
// (or loading it from the compilation cache), instantiating and
// initialising the instance, and the switch. A C stage (the filter, 19
// KB) and a Go stage (the Go runtime inside, 1.9 MB).
//
// cold: every version is a module the store and the compilation cache
// have never seen (the same code with another custom section, so another
// digest). warm: the stage alternates between two versions already
// pulled and compiled, as when a rollout returns to a version that ran
// before, or a fleet's agents share a cache.
func BenchmarkDigestToServing(b *testing.B) {
	for _, g := range []struct {
		name, guest string
	}{{"c", "filter"}, {"go", "gofilter"}} {
		for _, cache := range []string{"cold", "warm"} {
			b.Run(g.name+"/"+cache, func(b *testing.B) {
				benchDigestToServing(b, g.guest, cache == "warm")
			})
		}
	}
}

func benchDigestToServing(b *testing.B, guest string, warm bool) {
	ctx := context.Background()
	base, err := os.ReadFile(testGuest(b, guest))
	if err != nil {
		b.Fatal(err)
	}
	reg := registrytest.Start(b, registrytest.Options{})
	refStr := reg.Host + "/stages/bench:stable"
	params := map[string]any{"comms": []string{"sh"}}
	dataDir := b.TempDir()
	cache, err := wasmstages.NewCache(filepath.Join(dataDir, "wasm-cache"))
	if err != nil {
		b.Fatal(err)
	}
	defer cache.Close(ctx)
	stage, err := wasmstages.New(ctx, wasmstages.Config{Name: "bench", ModuleBytes: base, Params: params, Cache: cache})
	if err != nil {
		b.Fatal(err)
	}
	defer stage.Close(ctx)
	block := &config.Stage{Name: "bench", Wasm: &config.WasmStage{Module: "oci://" + refStr, Params: params, Reload: config.WasmReload{Watch: true}}}
	sp := &stagePlan{name: "bench", block: block, cfg: wasmstages.Config{Name: "bench", ModuleBytes: base,
		Version: wasmstages.Version{Digest: wasmstages.ModuleDigest(base), Ref: "oci://" + refStr}}}
	access := &imageAccess{policy: oci.Policy{Pull: oci.PullMissing}, dataDir: dataDir}
	f := newStageFollower(sp, access, func() []*wasmstages.Stage { return []*wasmstages.Stage{stage} }, slog.New(slog.DiscardHandler), pipeline.NewRegistry())
	f.set, f.access = f.settings, access
	spec := f.cfgSpec

	variant := func(i int) []byte { return testutil.WithCustomSection(base, "bench", fmt.Appendf(nil, "%d", i)) }
	swapTo := func(d digest.Digest) time.Duration {
		start := time.Now()
		f.reconcileDigest(ctx, &spec, d)
		took := time.Since(start)
		if st := f.Status(); st.Digest != d.String() {
			b.Fatalf("the stage runs %s after the swap to %s: %+v", st.Digest, d, st)
		}
		return took
	}
	var pair [2]digest.Digest
	if warm {
		// Both versions pulled and compiled once before the clock runs.
		for i := range pair {
			pair[i] = reg.PushStage(b, refStr, variant(i), nil)
			swapTo(pair[i])
		}
	}
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var d digest.Digest
		if warm {
			d = pair[i%2]
		} else {
			b.StopTimer()
			d = reg.PushStage(b, refStr, variant(1000+i), nil)
			b.StartTimer()
		}
		total += swapTo(d)
	}
	b.StopTimer()
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/swap")
}
