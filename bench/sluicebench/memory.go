package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// memoryResult is the default config's memory after a minute of
// activity, and where it goes.
type memoryResult struct {
	Seconds   float64 `json:"seconds"`
	Events    uint64  `json:"events"`
	RSSMB     float64 `json:"rss_mb"`
	RSSPeakMB float64 `json:"rss_peak_mb"`
	// Breakdown of RSS by mapping (smaps): Go heap and other anonymous
	// memory, BPF maps (ring buffers, mapped twice by their readers),
	// the executable's pages.
	BreakdownMB map[string]float64 `json:"breakdown_mb"`
	// Go's view (runtime/metrics through /metrics).
	GoHeapInuseMB float64 `json:"go_heap_inuse_mb"`
	GoHeapIdleMB  float64 `json:"go_heap_idle_mb"`
	// The idle heap the runtime has not returned to the system (the rest
	// of the idle heap is address space only).
	GoHeapIdleKeptMB float64 `json:"go_heap_idle_kept_mb"`
	GoSysMB          float64 `json:"go_sys_mb"`
	// CPUPerEventUS is the agent's CPU time (user + system) over the
	// minute of activity per event its sources received: what a memory
	// setting costs.
	CPUPerEventUS float64 `json:"cpu_per_event_us"`
	// HeapTop is `go tool pprof -top` of the live heap at the end.
	HeapTop string `json:"heap_top,omitempty"`
	Error   string `json:"error,omitempty"`
}

// runMemory runs `sluice config default` (ports and data_dir moved aside,
// a metrics and a pprof listener added) for secs with 50 execs/s, 1,000
// TCP connections/s and an open loop at 20,000 opens/s, then reads its
// memory.
func (e *benchEnv) runMemory(secs time.Duration) memoryResult {
	res := memoryResult{Seconds: secs.Seconds()}
	if err := e.memory(secs, &res); err != nil {
		res.Error = err.Error()
	}
	return res
}

func (e *benchEnv) memory(secs time.Duration, res *memoryResult) error {
	dir, err := e.scratch("memory")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	def, err := exec.Command(e.sluice, "config", "default").Output()
	if err != nil {
		return fmt.Errorf("sluice config default: %w", err)
	}
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return err
		}
	}
	maddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	paddr := fmt.Sprintf("127.0.0.1:%d", ports[2])
	cfg := strings.ReplaceAll(string(def), "127.0.0.1:4222", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	if !strings.Contains(cfg, "agent {\n") {
		return fmt.Errorf("the default config has no agent block to extend")
	}
	cfg = strings.Replace(cfg, "agent {\n", fmt.Sprintf("agent {\n  data_dir = %q\n  metrics_listen = %q\n", filepath.Join(dir, "data"), maddr), 1)
	a, err := startAgent(e.sluice, dir, maddr, cfg, "--pprof-listen", paddr)
	if err != nil {
		return err
	}
	defer a.stop(30 * time.Second)
	if err := a.waitReady(time.Minute); err != nil {
		return err
	}
	stopTrunc := truncating(filepath.Join(dir, "stdout"))
	defer stopTrunc()
	// What the built-in gadgets see: processes starting and exiting,
	// TCP connections made and accepted (the open loop feeds the configs
	// that still trace opens).
	loop, err := startOpenLoop(20000)
	if err != nil {
		return err
	}
	if err := loop.start(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	startCPU, err := readProc(a.pid())
	if err != nil {
		return err
	}
	startMetrics, err := getMetrics(maddr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), secs)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for ctx.Err() == nil {
			<-t.C
			exec.Command("/bin/true").Run()
		}
	}()
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for ctx.Err() == nil {
			<-t.C
			if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
				c.Close()
			}
		}
	}()
	<-ctx.Done()
	wg.Wait()
	if _, _, err := loop.stop(); err != nil {
		return err
	}
	e.drain(maddr)
	p, err := readProc(a.pid())
	if err != nil {
		return err
	}
	res.RSSMB, res.RSSPeakMB = mb(p.rss), mb(p.hwm)
	bd, err := smapsBreakdown(a.pid(), e.sluice)
	if err != nil {
		return err
	}
	res.BreakdownMB = map[string]float64{}
	for k, v := range bd {
		res.BreakdownMB[k] = mb(v)
	}
	m, err := getMetrics(maddr)
	if err != nil {
		return err
	}
	res.Events = uint64(m.sum("sluice_events_received_total", "component", "source"))
	if n := res.Events - uint64(startMetrics.sum("sluice_events_received_total", "component", "source")); n > 0 {
		res.CPUPerEventUS = float64((p.cpu - startCPU.cpu).Microseconds()) / float64(n)
	}
	res.GoHeapInuseMB = mb(int64(m.sum("go_memstats_heap_inuse_bytes")))
	res.GoHeapIdleMB = mb(int64(m.sum("go_memstats_heap_idle_bytes")))
	res.GoHeapIdleKeptMB = res.GoHeapIdleMB - mb(int64(m.sum("go_memstats_heap_released_bytes")))
	res.GoSysMB = mb(int64(m.sum("go_memstats_sys_bytes")))
	res.HeapTop = heapTop(paddr, dir)
	return nil
}

// heapTop is the top of the live heap by package, as `go tool pprof`
// prints it; "" when the go tool is not at hand.
func heapTop(paddr, dir string) string {
	resp, err := http.Get("http://" + paddr + "/debug/pprof/heap?gc=1")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	path := filepath.Join(dir, "heap.pb.gz")
	f, err := os.Create(path)
	if err != nil {
		return ""
	}
	_, err = f.ReadFrom(resp.Body)
	f.Close()
	if err != nil {
		return ""
	}
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=15", "-sample_index=inuse_space", path).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }
