package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// traceOpenResult is the real trace_open gadget under an open loop.
type traceOpenResult struct {
	Sink         string  `json:"sink"`
	Opens        uint64  `json:"opens"`
	OpensPerSec  float64 `json:"opens_per_sec"`
	Delivered    uint64  `json:"delivered"`
	DeliveredPct float64 `json:"delivered_pct"`
	KernelLost   uint64  `json:"kernel_lost"`
	CPUPerEvent  float64 `json:"cpu_ns_per_event"`
	RSSPeakMB    float64 `json:"rss_peak_mb"`
	Error        string  `json:"error,omitempty"`
}

// runTraceOpen runs trace_open (following the open loop's pid only, so
// that the machine's other opens do not count) into stdout JSON in a
// file, while the loop opens /dev/null as fast as it can. The share is of
// the loop's opens; CPU is the agent's per delivered event, over the
// loop's run.
func (e *benchEnv) runTraceOpen(secs time.Duration) traceOpenResult {
	res := traceOpenResult{Sink: "stdout json"}
	if err := e.traceOpen(secs, &res); err != nil {
		res.Error = err.Error()
	}
	return res
}

func (e *benchEnv) traceOpen(secs time.Duration, res *traceOpenResult) error {
	dir, err := e.scratch("trace_open")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	loop, err := startOpenLoop(0)
	if err != nil {
		return err
	}
	defer loop.stop()
	mport, err := freePort()
	if err != nil {
		return err
	}
	maddr := fmt.Sprintf("127.0.0.1:%d", mport)
	cfg := fmt.Sprintf(`agent {
  data_dir       = %q
  metrics_listen = %q
  log_level      = "warn"
  shutdown_grace = "10s"
}
source "gadget" "open" {
  gadget = "trace_open"
  params = { target_pid = %d }
}
sink "stdout" "out" { format = "json" }
pipeline "bench" {
  sources = [source.gadget.open]
  sinks   = [sink.stdout.out]
}
`, filepath.Join(dir, "data"), maddr, loop.pid())
	a, err := startAgent(e.sluice, dir, maddr, cfg)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			a.stop(30 * time.Second)
		}
	}()
	if err := a.waitReady(time.Minute); err != nil {
		return err
	}
	stopTrunc := truncating(filepath.Join(dir, "stdout"))
	defer stopTrunc()
	p0, err := readProc(a.pid())
	if err != nil {
		return err
	}
	if err := loop.start(); err != nil {
		return err
	}
	time.Sleep(secs)
	opens, loopSecs, err := loop.stop()
	if err != nil {
		return err
	}
	if err := e.drain(maddr); err != nil {
		return err
	}
	// Kernel losses are read every second.
	time.Sleep(1100 * time.Millisecond)
	p1, err := readProc(a.pid())
	if err != nil {
		return err
	}
	m, err := getMetrics(maddr)
	if err != nil {
		return err
	}
	res.Opens, res.OpensPerSec = opens, float64(opens)/loopSecs
	res.Delivered = uint64(m.sum("sluice_events_sent_total", "component", "sink", "name", "out"))
	res.KernelLost = uint64(m.sum("sluice_events_dropped_total", "component", "source", "reason", "kernel"))
	if opens > 0 {
		res.DeliveredPct = 100 * float64(res.Delivered) / float64(opens)
	}
	if res.Delivered > 0 {
		res.CPUPerEvent = float64(p1.cpu-p0.cpu) / float64(res.Delivered)
	}
	res.RSSPeakMB = float64(p1.hwm) / (1 << 20)
	stopped = true
	_, err = a.stop(30 * time.Second)
	return err
}
