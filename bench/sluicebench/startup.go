package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice-dev/sluice/internal/synth"
)

// startupResult is the time from starting the agent to the first event
// written by its sink, through one stage, with an empty compilation cache
// (cold) and then with the module cached.
type startupResult struct {
	Stage    string  `json:"stage"` // none, c (drop-comm), go (drop-comm-go)
	ColdMS   float64 `json:"cold_ms"`
	CachedMS float64 `json:"cached_ms"`
	Error    string  `json:"error,omitempty"`
}

func (e *benchEnv) runStartup(stage string) startupResult {
	res := startupResult{Stage: stage}
	dir, err := e.scratch("startup-" + stage)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer os.RemoveAll(dir)
	// Records all along, so that the first event comes as soon as the
	// pipeline runs.
	_, stop := producing(1000, 1)
	defer stop()
	stages, refs := "", ""
	switch stage {
	case "c":
		stages, refs = `stage "wasm" "f" {
  module = "drop-comm"
  params = { comms = ["no-such-comm"] }
}`, "stage.wasm.f"
	case "go":
		stages, refs = fmt.Sprintf(`stage "wasm" "f" {
  module = %q
  params = { comms = ["no-such-comm"] }
}`, e.goFilter), "stage.wasm.f"
	}
	for i, dst := range []*float64{&res.ColdMS, &res.CachedMS} {
		out := filepath.Join(dir, fmt.Sprintf("events-%d.jsonl", i))
		mport, err := freePort()
		if err != nil {
			res.Error = err.Error()
			return res
		}
		maddr := fmt.Sprintf("127.0.0.1:%d", mport)
		cfg := fmt.Sprintf(`agent {
  data_dir       = %q
  metrics_listen = %q
  log_level      = "warn"
}
source "gadget" "synth" {
  gadget = %q
  params = { target_tgid = %d }
}
%s
sink "file" "out" {
  path  = %q
  fsync = "never"
}
pipeline "start" {
  sources = [source.gadget.synth]
  stages  = [%s]
  sinks   = [sink.file.out]
  batch { max_delay = "1ms" }
}
`, filepath.Join(dir, "data"), maddr, filepath.Join(e.root, synth.Object(64)), os.Getpid(), stages, out, refs)
		a, err := startAgent(e.sluice, dir, maddr, cfg)
		if err != nil {
			res.Error = err.Error()
			return res
		}
		took, err := firstByte(context.Background(), out, a, time.Minute)
		a.stop(30 * time.Second)
		if err != nil {
			res.Error = err.Error()
			return res
		}
		*dst = float64(took) / float64(time.Millisecond)
	}
	return res
}

// firstByte waits for path to hold data and returns the time since the
// agent started.
func firstByte(ctx context.Context, path string, a *agentProc, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for {
		if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
			return time.Since(a.started), nil
		}
		select {
		case <-a.exited:
			return 0, fmt.Errorf("agent exited (%v):\n%s", a.err, a.logTail())
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no event after %s:\n%s", timeout, a.logTail())
		}
	}
}
