package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/synth"
	"github.com/sluice-dev/sluice/pipeline"
)

// soakSample is one second of a soak.
type soakSample struct {
	T          float64 `json:"t"` // seconds since the producer started
	RSSMB      float64 `json:"rss_mb"`
	Goroutines float64 `json:"goroutines"`
	FilePerSec float64 `json:"file_per_sec"`
	JSPerSec   float64 `json:"jetstream_per_sec"`
	QueueFill  float64 `json:"queue_fill_pct"` // the fullest queue, % of its max_events
	// Each queue's fill (% of max_events): the pipeline's edge queue
	// (before the stage) and the two sinks' queues.
	EdgeFill float64 `json:"edge_fill_pct"`
	BusFill  float64 `json:"jetstream_fill_pct"`
	FileFill float64 `json:"file_fill_pct"`
	// Records lost in the kernel (the ring buffer was full) this second,
	// and the most records due at one tick of the producer this second:
	// 50 when it is on time (1 ms ticks), everything due since its last
	// tick when it was not scheduled for a while (it catches up at four
	// times the rate).
	KernelLost   float64 `json:"kernel_lost"`
	ProducerLate float64 `json:"producer_most_per_tick"`
	// The agent's CPU (user + system, % of one core) this second, and
	// the machine's one-minute load average: the machine is shared.
	AgentCPU float64 `json:"agent_cpu_pct"`
	Load1    float64 `json:"load1"`
	// How long the agent's threads waited on a run queue for a CPU this
	// second, in % of the second (100: one thread wanting a CPU all
	// second and getting none).
	AgentWait float64 `json:"agent_runqueue_wait_pct"`
	// Where the RSS is: anonymous (the Go heap, stacks, the runtime's
	// own) and file-backed or shared pages (the executable, the ring
	// buffer); within the Go heap, the bytes in use, the collector's
	// goal and the free pages the runtime keeps without returning them;
	// and the bytes the pipeline's queues hold.
	AnonMB     float64 `json:"rss_anon_mb"`
	FileMB     float64 `json:"rss_file_mb"`
	HeapMB     float64 `json:"heap_inuse_mb"`
	HeapGoalMB float64 `json:"heap_goal_mb"`
	HeapIdleMB float64 `json:"heap_idle_kept_mb"`
	QueuedMB   float64 `json:"queued_mb"`
}

// soakResult is what `make soak` checks and keeps.
type soakResult struct {
	Commit     string       `json:"commit"`
	Date       string       `json:"date"`
	Kernel     string       `json:"kernel"`
	Cores      int          `json:"cores"`
	Seconds    float64      `json:"seconds"`
	Rate       int          `json:"rate"`
	Requested  uint64       `json:"requested"`
	Checks     []soakCheck  `json:"checks"`
	Counters   []string     `json:"counters"`
	Samples    []soakSample `json:"samples"`
	FileEvents uint64       `json:"file_events"`
	// Goroutines per creator every 30s after the warm-up (the leak check).
	Goroutines []goroutineSample `json:"goroutines,omitempty"`
	// Scrapes of /metrics that did not answer within 5s (no sample then).
	MissedScrapes int           `json:"missed_scrapes"`
	LossRecords   []lossSummary `json:"loss_records,omitempty"`
	// What the kernel losses came with (lossCauses), and the agent's
	// warnings and errors by message.
	Losses        string         `json:"losses,omitempty"`
	AgentWarnings map[string]int `json:"agent_warnings,omitempty"`
	// The first line of each of them, as the agent logged it.
	AgentLogFirsts []string `json:"agent_log_firsts,omitempty"`
	// Why the producer's thread is not SCHED_FIFO, if it is not.
	ProducerNote string `json:"producer_note,omitempty"`
}

type soakCheck struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	Note string `json:"note"`
}

type lossSummary struct {
	Reason    string `json:"reason"`
	Component string `json:"component"`
	Count     uint64 `json:"count"`
	SeqFirst  uint64 `json:"seq_first,omitempty"`
	SeqLast   uint64 `json:"seq_last,omitempty"`
}

// soakMain is `make soak`: the synthetic producer at a steady rate through
// a Wasm stage into JetStream (the embedded server) and a JSON file, for
// a long time. It checks that memory and goroutines stay flat after the
// warm-up, that every component's counters balance exactly, that every
// record the producer asked for was delivered or counted lost, and that
// the file's sequence numbers have no gap that no loss record explains;
// it writes soak.json, soak.md and soak.png (RSS, events/s and queue fill
// over time) to the results directory and fails when a check does.
func soakMain(args []string) error {
	fs := flag.NewFlagSet("soak", flag.ExitOnError)
	duration := fs.Duration("duration", 10*time.Minute, "how long the producer runs")
	// The stream remembers message ids for its duplicate window (30 s, as
	// in the built-in config; the server's table of them swings between
	// one and three windows' worth, compacted when two thirds are stale):
	// memory grows until it is full. Messages are kept an hour, as the
	// built-in config keeps them: the soak writes ~6 GB to the stream's
	// store, and none expires meanwhile (expiry churns the embedded
	// server's 8 MB block buffers, which is the server's memory, not the
	// agent's own, and swamps a ±10% check).
	warmup := fs.Duration("warmup", 150*time.Second, "the start that the flatness checks leave out (the stream's duplicate window fills up, the stream's first blocks are written)")
	rate := fs.Int("rate", 50000, "records per second")
	out := fs.String("out", "bench/results", "directory of soak.json, soak.md and soak.png")
	sluice := fs.String("sluice", "bin/sluice", "the agent binary")
	fs.Parse(args)
	env, err := newEnv(*sluice)
	if err != nil {
		return err
	}
	defer os.RemoveAll(env.tmp)
	rep := newReport(env, false)
	res := &soakResult{Commit: rep.Commit, Date: rep.Date, Kernel: rep.Kernel, Cores: rep.Cores, Rate: *rate}
	if err := env.soak(*duration, *warmup, *rate, res); err != nil {
		return err
	}
	dir := resultsDir(env.root, *out)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "soak.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := plotSoak(res, filepath.Join(dir, "soak.png")); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	md := res.markdown()
	if err := os.WriteFile(filepath.Join(dir, "soak.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	for _, c := range res.Checks {
		if !c.OK {
			return fmt.Errorf("soak check failed: %s: %s", c.Name, c.Note)
		}
	}
	return nil
}

func (e *benchEnv) soak(duration, warmup time.Duration, rate int, res *soakResult) error {
	dir, err := e.scratch("soak")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	mport, err := freePort()
	if err != nil {
		return err
	}
	nport, err := freePort()
	if err != nil {
		return err
	}
	pport, err := freePort()
	if err != nil {
		return err
	}
	maddr := fmt.Sprintf("127.0.0.1:%d", mport)
	paddr := fmt.Sprintf("127.0.0.1:%d", pport)
	eventsPath := filepath.Join(dir, "events.jsonl")
	cfg := fmt.Sprintf(`agent {
  data_dir       = %q
  metrics_listen = %q
  log_level      = "warn"
  shutdown_grace = "30s"
  nats_server {
    listen    = "127.0.0.1:%d"
    jetstream = true
  }
}
source "gadget" "synth" {
  gadget = %q
  params = { target_tgid = %d }
}
stage "wasm" "filter" {
  module = "drop-comm"
  params = { comms = ["no-such-comm"] }
}
sink "nats" "bus" {
  url     = "nats://127.0.0.1:%d"
  subject = "soak.{source}"
  jetstream {
    stream           = "SOAK"
    create           = true
    max_age          = "1h"
    duplicate_window = "30s"
  }
  batch { max_events = 100 }
}
sink "file" "events" {
  path  = %q
  rotate { max_size = "128MiB" }
  retention { max_files = 2 }
}
pipeline "soak" {
  sources = [source.gadget.synth]
  stages  = [stage.wasm.filter]
  sinks   = [sink.nats.bus, sink.file.events]
}
`, filepath.Join(dir, "data"), maddr, nport, filepath.Join(e.root, synth.Object(64)), os.Getpid(), nport, eventsPath)
	a, err := startAgent(e.sluice, dir, maddr, cfg, "--pprof-listen", paddr)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			a.stop(time.Minute)
		}
	}()
	if err := a.waitReady(2 * time.Minute); err != nil {
		return err
	}
	// The file is read as it is written (rotated files stay readable
	// through the open descriptor after retention deletes them).
	follower := &fileFollower{path: eventsPath}
	follow := make(chan error, 1)
	stopFollow := make(chan struct{})
	go func() { follow <- follower.run(stopFollow) }()

	e.log("soak: %d records/s for %s", rate, duration)
	// The producer's thread runs SCHED_FIFO and catches up at four times
	// the rate: on a machine loaded by other work it was late by up to
	// 1.3 s and caught up in one burst of tens of thousands of records,
	// several times what the gadget's ring (about 14,500 records) holds
	// however fast the agent reads (RATIONALE.md).
	prod := &synth.Producer{Rate: rate, Threads: 1, RealTime: true, CatchUp: 4}
	stopProd := startProducer(prod)
	start := time.Now()
	var prevFile, prevJS, prevLost float64
	var prevProc procSample
	var prevWait time.Duration
	prevT := start
	nextDump := warmup
	tick := time.NewTicker(time.Second)
	for now := range tick.C {
		m, err := getMetrics(maddr)
		if err != nil {
			// A scrape that does not answer within its timeout (a
			// machine starved by other work) is a missing sample, kept
			// in the report; an agent that exited ends the soak.
			select {
			case <-a.exited:
				tick.Stop()
				stopProd()
				return fmt.Errorf("agent exited during the soak (%v):\n%s", a.err, a.logTail())
			default:
			}
			res.MissedScrapes++
			e.log("soak: scrape at %.0fs: %v", now.Sub(start).Seconds(), err)
			if now.Sub(start) >= duration {
				break
			}
			continue
		}
		p, _ := readProc(a.pid())
		file := m.sum("sluice_events_sent_total", "component", "sink", "name", "events")
		jsSent := m.sum("sluice_events_sent_total", "component", "sink", "name", "bus")
		lost := m.sum("sluice_events_dropped_total", "component", "source", "reason", "kernel")
		dt := now.Sub(prevT).Seconds()
		fill := func(component, name string) float64 {
			return 100 * m.sum(pipeline.MetricQueueLen, "component", component, "name", name) / pipeline.DefaultQueueEvents
		}
		edge, bus, ff := fill("pipeline", "soak"), fill("sink", "bus"), fill("sink", "events")
		cpu, wait, runq := 0.0, 0.0, runQueueWait(a.pid())
		if !prevProc.at.IsZero() {
			cpu = 100 * (p.cpu - prevProc.cpu).Seconds() / p.at.Sub(prevProc.at).Seconds()
			wait = max(0, 100*(runq-prevWait).Seconds()/p.at.Sub(prevProc.at).Seconds())
		}
		prevProc, prevWait = p, runq
		res.Samples = append(res.Samples, soakSample{T: now.Sub(start).Seconds(), RSSMB: mb(p.rss),
			Goroutines: m.sum("go_goroutines"), FilePerSec: (file - prevFile) / dt, JSPerSec: (jsSent - prevJS) / dt,
			QueueFill: max(edge, bus, ff), EdgeFill: edge, BusFill: bus, FileFill: ff,
			KernelLost: lost - prevLost, ProducerLate: float64(prod.TakeLateMost()), AgentCPU: cpu, Load1: load1(), AgentWait: wait,
			AnonMB: mb(p.anon), FileMB: mb(p.file),
			HeapMB:     m.sum("go_memstats_heap_inuse_bytes") / (1 << 20),
			HeapGoalMB: m.sum("go_memstats_next_gc_bytes") / (1 << 20),
			HeapIdleMB: (m.sum("go_memstats_heap_idle_bytes") - m.sum("go_memstats_heap_released_bytes")) / (1 << 20),
			QueuedMB:   m.sum(pipeline.MetricQueueMem) / (1 << 20)})
		if t := now.Sub(start); t >= nextDump {
			nextDump += 30 * time.Second
			if g, err := getGoroutines(paddr); err == nil {
				res.Goroutines = append(res.Goroutines, goroutineSample{T: t.Seconds(), ByCreator: g})
			} else {
				e.log("soak: goroutine dump: %v", err)
			}
		}
		prevFile, prevJS, prevLost, prevT = file, jsSent, lost, now
		if n := len(res.Samples); n%60 == 0 {
			e.log("soak: %.0fs, RSS %.1f MB, %.0f goroutines, %.0f events/s into the file", res.Samples[n-1].T, res.Samples[n-1].RSSMB, res.Samples[n-1].Goroutines, res.Samples[n-1].FilePerSec)
		}
		if now.Sub(start) >= duration {
			break
		}
	}
	tick.Stop()
	res.Requested = stopProd()
	if err := prod.RealTimeErr(); err != nil {
		res.ProducerNote = err.Error()
	}
	res.Seconds = time.Since(start).Seconds()
	if err := e.drain(maddr); err != nil {
		return err
	}
	waitMetric(maddr, 5*time.Second, func(s scrape) bool {
		return uint64(s.sum("sluice_events_received_total", "component", "source")) >= res.Requested
	})
	// Stop the agent (its last loss records go out on the way) before
	// the final count, so that everything it wrote is in the file.
	stopped = true
	fin, err := getMetrics(maddr)
	if err != nil {
		return err
	}
	if _, err := a.stop(time.Minute); err != nil {
		return err
	}
	res.AgentWarnings, res.AgentLogFirsts = logWarnings(filepath.Join(dir, "agent.log"))
	time.Sleep(500 * time.Millisecond) // the follower reads to the end
	close(stopFollow)
	if err := <-follow; err != nil {
		return err
	}
	res.FileEvents = follower.events
	res.LossRecords = follower.losses
	res.Losses = lossCauses(res.Samples)
	res.check(fin, follower, warmup)
	return nil
}

func (res *soakResult) check(fin scrape, f *fileFollower, warmup time.Duration) {
	add := func(name string, ok bool, note string) { res.Checks = append(res.Checks, soakCheck{name, ok, note}) }
	var rss, gor []float64
	for _, s := range res.Samples {
		if s.T >= warmup.Seconds() {
			rss = append(rss, s.RSSMB)
			gor = append(gor, s.Goroutines)
		}
	}
	if len(rss) > 0 {
		// The RSS is judged by its level: the median of each 30-s
		// window after the warm-up against the median of them all. A
		// one-second sample catches the collector at a random point of
		// its cycle (the heap between its live size and its goal, 1.5
		// times that under GOGC 50, plus freed pages the runtime has not
		// returned yet): at this rate a cycle takes a second or two, and
		// one-second samples swing by ±20% around a flat level. A leak or
		// unbounded buffering raises the level, and the windows with it.
		med := medianF(rss)
		lo, hi := slices.Min(rss), slices.Max(rss)
		wins := windowMedians(res.Samples, warmup.Seconds(), 30, func(s soakSample) float64 { return s.RSSMB })
		if len(wins) == 0 {
			wins = []float64{lo, hi} // too short a run to have a window: judge the samples
		}
		wlo, whi := slices.Min(wins), slices.Max(wins)
		goals := windowMedians(res.Samples, warmup.Seconds(), 30, func(s soakSample) float64 { return s.HeapGoalMB })
		add("RSS within ±10% after warm-up (30-s medians)", wlo >= 0.9*med && whi <= 1.1*med,
			fmt.Sprintf("median %.1f MB; %d windows from %.1f (%+.1f%%) to %.1f (%+.1f%%); one-second samples from %.1f (%+.1f%%) to %.1f (%+.1f%%), the collector's cycle; Go heap goal (1.5x the live heap) by window %s MB",
				med, len(wins), wlo, 100*(wlo/med-1), whi, 100*(whi/med-1), lo, 100*(lo/med-1), hi, 100*(hi/med-1), joinF(goals)))
		glo, ghi := slices.Min(gor), slices.Max(gor)
		grew, varied := goroutineTrend(res.Goroutines)
		note := fmt.Sprintf("%d goroutine dumps; none grew; total between %.0f and %.0f; came and went: %s", len(res.Goroutines), glo, ghi, orNone(varied))
		if len(grew) > 0 {
			note = fmt.Sprintf("grew (fewest in the last third > most in the first): %s; total between %.0f and %.0f", strings.Join(grew, ", "), glo, ghi)
		}
		add("goroutines flat after warm-up (per creator)", len(res.Goroutines) >= 3 && len(grew) == 0, note)
	}
	ok, note := balance(fin, res.Requested)
	if ok {
		note = fmt.Sprintf("%d records asked for; every component received = sent + dropped", res.Requested)
	}
	add("counters balance exactly", ok, note)
	for _, ser := range fin.series {
		switch ser.name {
		case "sluice_events_received_total", "sluice_events_sent_total":
			res.Counters = append(res.Counters, fmt.Sprintf("%s{%s/%s} %.0f", strings.TrimPrefix(ser.name, "sluice_events_"), ser.labels["component"], ser.labels["name"], ser.value))
		case "sluice_events_dropped_total":
			if ser.value > 0 {
				res.Counters = append(res.Counters, fmt.Sprintf("dropped{%s/%s,%s} %.0f", ser.labels["component"], ser.labels["name"], ser.labels["reason"], ser.value))
			}
		}
	}
	slices.Sort(res.Counters)
	add("no sequence gap without a loss record", f.unexplained == 0 && f.err == "",
		fmt.Sprintf("%d events read from the file, %d seq gaps (%d events) covered by loss records, %d unexplained; kseq: %d records missing, %d reported lost in the kernel; %s",
			f.events, f.gaps, f.gapEvents, f.unexplained, f.kseqMissing(), f.kernelLost, f.err))
	// Every record asked for is in the file unless it was counted lost
	// on its way there (the JetStream sink's own drops do not touch the
	// file).
	lost := fin.sum("sluice_events_dropped_total", "component", "source") +
		fin.sum("sluice_events_dropped_total", "component", "pipeline") +
		fin.sum("sluice_events_dropped_total", "component", "stage") +
		fin.sum("sluice_events_dropped_total", "component", "sink", "name", "events")
	add("the file holds every event not counted lost", float64(f.events)+lost == float64(res.Requested),
		fmt.Sprintf("%d events in the file + %.0f counted lost on the way = %d asked for (and %d loss records)", f.events, lost, res.Requested, f.lossEvents))
}

// fileFollower reads the file sink's JSON lines as they are written,
// across rotations, and checks the sequence numbers of the synthetic
// source: the envelope's seq must be gap-free except where a loss record
// names the range, and the gadget's kseq numbers missing must equal the
// kernel losses the loss records report.
type fileFollower struct {
	path string

	events, lossEvents uint64
	lastSeq            uint64
	gaps, gapEvents    uint64
	unexplained        uint64
	pending            [][2]uint64 // seq gaps not yet explained
	covered            [][2]uint64 // loss records' seq ranges
	kseqs              kseqSet
	kernelLost         uint64
	losses             []lossSummary
	err                string
}

func (f *fileFollower) run(stop <-chan struct{}) error {
	var cur *os.File
	var rd *bufio.Reader
	var partial []byte
	defer func() {
		if cur != nil {
			cur.Close()
		}
	}()
	stopping := false
	for {
		if cur == nil {
			fh, err := os.Open(f.path)
			if err != nil {
				if stopping {
					break
				}
				select {
				case <-stop:
					stopping = true
				case <-time.After(50 * time.Millisecond):
				}
				continue
			}
			cur, rd = fh, bufio.NewReaderSize(fh, 1<<20)
		}
		line, err := rd.ReadSlice('\n')
		if err == nil || errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, bufio.ErrBufferFull) || len(partial) > 0 {
				partial = append(partial, line...)
				if errors.Is(err, bufio.ErrBufferFull) {
					continue
				}
				line, partial = partial, nil
			}
			f.line(line)
			if len(partial) == 0 {
				partial = nil
			}
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		partial = append(partial, line...)
		// At the end of what was written: if the path is now another
		// file (rotated), this one is complete; move on.
		st1, err1 := cur.Stat()
		st2, err2 := os.Stat(f.path)
		if err1 == nil && err2 == nil && !os.SameFile(st1, st2) {
			cur.Close()
			cur = nil
			continue
		}
		if stopping {
			break
		}
		select {
		case <-stop:
			stopping = true
		case <-time.After(20 * time.Millisecond):
		}
	}
	if len(bytes.TrimSpace(partial)) > 0 {
		f.err = fmt.Sprintf("the file ends in a partial line (%d bytes)", len(partial))
	}
	f.finish()
	return nil
}

// field returns the number after "key": in a JSON line, at its top level
// as the agent writes it.
func field(line []byte, key string) (uint64, bool) {
	i := bytes.Index(line, []byte(`,"`+key+`":`))
	if i < 0 {
		return 0, false
	}
	rest := line[i+len(key)+4:]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	v, err := strconv.ParseUint(string(rest[:j]), 10, 64)
	return v, err == nil
}

func (f *fileFollower) line(line []byte) {
	if bytes.Contains(line, []byte(`"type":"loss"`)) {
		var rec struct {
			Reason, Component string
			Count             uint64
			SeqFirst          uint64 `json:"seq_first"`
			SeqLast           uint64 `json:"seq_last"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			f.err = fmt.Sprintf("a loss record does not parse: %v", err)
			return
		}
		f.lossEvents++
		f.losses = append(f.losses, lossSummary{rec.Reason, rec.Component, rec.Count, rec.SeqFirst, rec.SeqLast})
		if rec.Reason == "kernel" {
			f.kernelLost += rec.Count
		}
		if rec.SeqFirst > 0 {
			f.covered = append(f.covered, [2]uint64{rec.SeqFirst, rec.SeqLast})
		}
		return
	}
	seq, ok1 := field(line, "seq")
	kseq, ok2 := field(line, "kseq")
	if !ok1 || !ok2 {
		f.err = fmt.Sprintf("a line without seq or kseq: %.120s", line)
		return
	}
	f.events++
	f.kseqs.add(kseq)
	if seq > f.lastSeq+1 {
		f.gaps++
		f.gapEvents += seq - f.lastSeq - 1
		f.pending = append(f.pending, [2]uint64{f.lastSeq + 1, seq - 1})
	}
	f.lastSeq = max(f.lastSeq, seq)
}

func (f *fileFollower) finish() {
	for _, g := range f.pending {
		explained := false
		for _, c := range f.covered {
			if c[0] <= g[0] && g[1] <= c[1] {
				explained = true
			}
		}
		if !explained {
			f.unexplained++
		}
	}
	if missing := f.kseqMissing(); missing != f.kernelLost {
		f.unexplained += max(missing, f.kernelLost) - min(missing, f.kernelLost)
	}
}

func (f *fileFollower) kseqMissing() uint64 { return f.kseqs.missing() }

// kseqSet tracks which kseq numbers arrived, compactly: records arrive
// nearly in order, so it keeps the highest contiguous number and the few
// beyond it.
type kseqSet struct {
	contiguous uint64              // every number up to it arrived
	ahead      map[uint64]struct{} // arrived beyond contiguous+1
	highest    uint64
	count      uint64
}

func (k *kseqSet) add(v uint64) {
	k.count++
	k.highest = max(k.highest, v)
	if v == k.contiguous+1 {
		k.contiguous = v
		for {
			if _, ok := k.ahead[k.contiguous+1]; !ok {
				break
			}
			delete(k.ahead, k.contiguous+1)
			k.contiguous++
		}
		// A gap that stays (a lost record) would pin everything after
		// it: past a bound, skip over it.
		if len(k.ahead) > 1<<16 {
			k.contiguous = k.highest
			clear(k.ahead)
		}
		return
	}
	if k.ahead == nil {
		k.ahead = map[uint64]struct{}{}
	}
	k.ahead[v] = struct{}{}
	if len(k.ahead) > 1<<16 {
		k.contiguous = k.highest
		clear(k.ahead)
	}
}

// missing is how many numbers up to the highest never arrived.
func (k *kseqSet) missing() uint64 { return k.highest - k.count }

// windowMedians splits the samples from `from` seconds on into windows
// of `width` seconds and returns the median of f over each window that
// has at least half its samples.
func windowMedians(samples []soakSample, from, width float64, f func(soakSample) float64) []float64 {
	var out, cur []float64
	end := from + width
	flush := func() {
		if float64(len(cur)) >= width/2 {
			out = append(out, medianF(cur))
		}
		cur = cur[:0]
	}
	for _, s := range samples {
		if s.T < from {
			continue
		}
		for s.T >= end {
			flush()
			end += width
		}
		cur = append(cur, f(s))
	}
	flush()
	return out
}

func joinF(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, ", ")
}

func medianF(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	return s[len(s)/2]
}

func (res *soakResult) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# sluice soak\n\ncommit %.12s, %s, kernel %s, %d cores. `make soak`: %d records/s of the synthetic producer (64 bytes) for %.0fs through a Wasm stage (drop-comm, C, keeping every event) into JetStream (the embedded server, 100 events per message, kept an hour as the built-in config does) and a JSON file sink.\n\n",
		res.Commit, res.Date, res.Kernel, res.Cores, res.Rate, res.Seconds)
	b.WriteString("![RSS, events/s, queue fill, kernel losses and the machine over time](soak.png)\n\n| check | result | detail |\n|---|---|---|\n")
	for _, c := range res.Checks {
		ok := "pass"
		if !c.OK {
			ok = "FAIL"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", c.Name, ok, oneLine(c.Note))
	}
	b.WriteString("\nFinal counters:\n\n```\n")
	for _, c := range res.Counters {
		b.WriteString(c + "\n")
	}
	b.WriteString("```\n")
	if len(res.LossRecords) > 0 {
		fmt.Fprintf(&b, "\n%d loss records in the file.\n", len(res.LossRecords))
	}
	fmt.Fprintf(&b, "\nKernel losses: %s.\n", res.Losses)
	if len(res.Samples) > 0 {
		pick := func(f func(soakSample) float64) (lo, med, hi float64) {
			xs := make([]float64, len(res.Samples))
			for i, s := range res.Samples {
				xs[i] = f(s)
			}
			return slices.Min(xs), medianF(xs), slices.Max(xs)
		}
		l0, l1, l2 := pick(func(s soakSample) float64 { return s.Load1 })
		c0, c1, c2 := pick(func(s soakSample) float64 { return s.AgentCPU })
		w0, w1, w2 := pick(func(s soakSample) float64 { return s.AgentWait })
		p0, p1, p2 := pick(func(s soakSample) float64 { return s.ProducerLate })
		fmt.Fprintf(&b, "\nThe machine (2 cores, shared; minimum, median, maximum over the one-second samples): load average %.1f, %.1f, %.1f; the agent's CPU %.0f, %.0f, %.0f%% of one core; its threads waited for a CPU %.0f, %.0f, %.0f%% of each second; the records due at the producer's tick %.0f, %.0f, %.0f (50 when on time).\n",
			l0, l1, l2, c0, c1, c2, w0, w1, w2, p0, p1, p2)
	}
	if res.ProducerNote != "" {
		fmt.Fprintf(&b, "\nThe producer ran without real-time priority: %s.\n", res.ProducerNote)
	}
	if len(res.AgentWarnings) > 0 {
		msgs := make([]string, 0, len(res.AgentWarnings))
		for m, n := range res.AgentWarnings {
			msgs = append(msgs, fmt.Sprintf("%s (%d)", m, n))
		}
		slices.Sort(msgs)
		fmt.Fprintf(&b, "\nThe agent's log: %s. The first of each:\n\n```\n%s\n```\n", strings.Join(msgs, "; "), strings.Join(res.AgentLogFirsts, "\n"))
	} else {
		b.WriteString("\nThe agent logged no warning or error.\n")
	}
	if res.MissedScrapes > 0 {
		fmt.Fprintf(&b, "\n%d scrapes of /metrics did not answer within 5s (the machine is shared); those seconds have no sample.\n", res.MissedScrapes)
	}
	return b.String()
}

// logWarnings counts the agent's warnings and errors (its text log) by
// level, message and kind (a stage's failures have one): a sink that retried, a queue that blocked, a reader
// that broke leave their mark here even when the counters balance.
func logWarnings(path string) (counts map[string]int, firsts []string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil
	}
	out := map[string]int{}
	for line := range strings.SplitSeq(string(b), "\n") {
		level := ""
		for _, l := range []string{"WARN", "ERROR"} {
			if strings.Contains(line, "level="+l+" ") {
				level = l
			}
		}
		if level == "" {
			continue
		}
		msg := ""
		if _, rest, ok := strings.Cut(line, " msg="); ok {
			if strings.HasPrefix(rest, `"`) {
				if v, err := strconv.QuotedPrefix(rest); err == nil {
					msg, _ = strconv.Unquote(v)
				}
			} else {
				msg, _, _ = strings.Cut(rest, " ")
			}
		}
		if _, rest, ok := strings.Cut(line, " kind="); ok {
			kind, _, _ := strings.Cut(rest, " ")
			msg += " (kind " + kind + ")"
		}
		key := level + ": " + msg
		if out[key] == 0 {
			firsts = append(firsts, line[:min(len(line), 500)])
		}
		out[key]++
	}
	return out, firsts
}

// lossCauses describes the kernel losses over time: how many seconds had
// any, when, and what those seconds and the one before each looked like
// (the producer's largest tick, the queues' fill, how long the agent's
// threads waited for a CPU, the load average), which tells a reader that
// did not keep up (a full queue behind it, or an agent without a CPU)
// from a producer that wrote more at once than the ring holds.
func lossCauses(samples []soakSample) string {
	var secs []string
	var n int
	var total, late, fill, wait, load float64
	for i, s := range samples {
		if s.KernelLost <= 0 {
			continue
		}
		n++
		total += s.KernelLost
		if len(secs) < 12 {
			secs = append(secs, fmt.Sprintf("%.0fs: %.0f", s.T, s.KernelLost))
		}
		for _, x := range samples[max(0, i-1) : i+1] {
			late = max(late, x.ProducerLate)
			fill = max(fill, x.EdgeFill, x.BusFill, x.FileFill)
			wait = max(wait, x.AgentWait)
			load = max(load, x.Load1)
		}
	}
	if n == 0 {
		return "no record lost in the kernel"
	}
	more := ""
	if n > len(secs) {
		more = ", …"
	}
	return fmt.Sprintf("%.0f records lost in the kernel in %d of %d seconds (%s%s); in those seconds and the one before each, at most: the producer was %.0f records behind at one tick (50 due when on time; it catches up at 4x the rate; the ring holds about %d), a queue was %.0f%% full, the agent's threads waited %.0f%% of a second for a CPU, load average %.1f",
		total, n, len(samples), strings.Join(secs, ", "), more, late, synth.RingSize/(64+8), fill, wait, load)
}
