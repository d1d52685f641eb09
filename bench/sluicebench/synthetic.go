package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/synth"
)

// synthCase is one run of the synthetic producer: the bare reader ("raw")
// or the agent into one sink, through some stages.
type synthCase struct {
	Sink   string // raw, rawjson (the raw reader writing JSON lines: jsonLineWriter), rawcodec (the same with sluice's decoder and encoder), null, stdout, file, nats, jetstream (100 events per message, as the built-in config), jetstream1 (one per message)
	Size   int    // record bytes: 64 or 256
	Stages string // "" (none), c1, c3 (C filters), go1, go3 (Go filters)
}

func (c synthCase) String() string {
	st := c.Stages
	if st == "" {
		st = "none"
	}
	return fmt.Sprintf("%s/%dB/%s", c.Sink, c.Size, st)
}

// synthResult is what one run measured. Rates and CPU are taken over the
// flat-out window; losses over the whole run.
type synthResult struct {
	Case          string  `json:"case"`
	Sink          string  `json:"sink"`
	Size          int     `json:"record_bytes"`
	Stages        string  `json:"stages"`
	EventsPerSec  float64 `json:"events_per_sec"`
	RequestedPerS float64 `json:"requested_per_sec"` // what the producer asked the kernel for
	OfRaw         float64 `json:"of_raw"`            // EventsPerSec / the raw reader's, same record size
	OfNoStage     float64 `json:"of_no_stage,omitempty"`
	Requested     uint64  `json:"requested"`
	KernelLost    uint64  `json:"kernel_lost"`
	KernelLostPct float64 `json:"kernel_lost_pct"`
	// UserDrops are the drops after the reader, by component/reason
	// (filtered events not counted: the filters keep everything).
	UserDrops   map[string]float64 `json:"user_drops,omitempty"`
	CPUPerEvent float64            `json:"cpu_ns_per_event"` // user + system of the agent's process
	// BytesPerEvent is what the file sink wrote per event (file runs).
	BytesPerEvent float64 `json:"bytes_per_event,omitempty"`
	RSSSteadyMB   float64 `json:"rss_steady_mb"`
	RSSPeakMB     float64 `json:"rss_peak_mb"`
	LatencyRate   int     `json:"latency_rate,omitempty"`
	LatencyP50ms  float64 `json:"latency_p50_ms,omitempty"`
	LatencyP99ms  float64 `json:"latency_p99_ms,omitempty"`
	Balanced      bool    `json:"balanced"`
	BalanceNote   string  `json:"balance_note,omitempty"`
	Error         string  `json:"error,omitempty"`
}

// benchEnv is what every run needs.
type benchEnv struct {
	root     string // the repository
	sluice   string // the agent binary
	tmp      string // scratch directories live here
	window   time.Duration
	latRate  int
	latDur   time.Duration
	goFilter string // path of the Go filter module
	// producers is the number of threads of a flat-out producer: one per
	// CPU, so that the producer, not the reader, has the larger share
	// of the machine and the reader is the limit.
	producers int
	// profileDir, when set, receives a CPU profile of each synthetic
	// agent run's flat-out window.
	profileDir string
	log        func(format string, args ...any)
}

func (e *benchEnv) scratch(name string) (string, error) {
	return os.MkdirTemp(e.tmp, strings.NewReplacer("/", "-").Replace(name)+"-")
}

// stageBlocks returns the config blocks and references of the filter
// stages of spec: c1, c3, go1, go3. Every filter keeps every event (its
// comm list names no process), so each run delivers the same events.
func (e *benchEnv) stageBlocks(spec string) (blocks string, refs []string) {
	if spec == "" {
		return "", nil
	}
	module, n := `"drop-comm"`, 1
	switch spec {
	case "c3":
		n = 3
	case "go1":
		module = fmt.Sprintf("%q", e.goFilter)
	case "go3":
		module, n = fmt.Sprintf("%q", e.goFilter), 3
	}
	var b strings.Builder
	for i := range n {
		name := fmt.Sprintf("filter%d", i+1)
		fmt.Fprintf(&b, "stage \"wasm\" %q {\n  module = %s\n  params = { comms = [\"no-such-comm\"] }\n}\n", name, module)
		refs = append(refs, "stage.wasm."+name)
	}
	return b.String(), refs
}

// stageRefs returns the references of the filter stages of spec.
func (e *benchEnv) stageRefs(spec string) []string {
	_, refs := e.stageBlocks(spec)
	return refs
}

// sinkBlocks returns the agent block's extra lines (an embedded NATS
// server) and the sink block of kind, named out.
func sinkBlocks(kind, dir string, natsPort int) (agentExtra, sink string) {
	switch kind {
	case "null":
		return "", `sink "null" "out" {}`
	case "stdout":
		return "", `sink "stdout" "out" { format = "json" }`
	case "file":
		return "", fmt.Sprintf(`sink "file" "out" {
  path = %q
  rotate { max_size = "256MiB" }
  retention { max_files = 1 }
}`, filepath.Join(dir, "events.jsonl"))
	case "nats", "jetstream", "jetstream1":
		js := kind != "nats"
		agentExtra = fmt.Sprintf("  nats_server {\n    listen = \"127.0.0.1:%d\"\n    jetstream = %v\n  }\n", natsPort, js)
		sink = fmt.Sprintf("sink \"nats\" \"out\" {\n  url = \"nats://127.0.0.1:%d\"\n  subject = \"bench.{source}\"\n", natsPort)
		if js {
			sink += "  jetstream {\n    stream = \"BENCH\"\n    create = true\n    max_age = \"10m\"\n  }\n"
		}
		if kind == "jetstream" {
			// As the built-in config (config/default.hcl) has it;
			// jetstream1 is one event per message.
			sink += "  batch {\n    max_events = 100\n  }\n"
		}
		return agentExtra, sink + "}"
	}
	panic("unknown sink " + kind)
}

// agentConfig is the config of one synthetic run.
func (e *benchEnv) agentConfig(c synthCase, dir, metricsAddr string, natsPort int) string {
	agentExtra, sink := sinkBlocks(c.Sink, dir, natsPort)
	stages, refs := e.stageBlocks(c.Stages)
	return fmt.Sprintf(`agent {
  data_dir       = %q
  metrics_listen = %q
  log_level      = "warn"
  shutdown_grace = "10s"
%s}
source "gadget" "synth" {
  gadget = %q
  params = { target_tgid = %d }
}
%s
%s
pipeline "bench" {
  sources = [source.gadget.synth]
  stages  = [%s]
  sinks   = [sink.%s.out]
}
`, filepath.Join(dir, "data"), metricsAddr, agentExtra, filepath.Join(e.root, synth.Object(c.Size)), os.Getpid(),
		stages, sink, strings.Join(refs, ", "), sinkType(c.Sink))
}

func sinkType(kind string) string {
	if kind == "jetstream" || kind == "jetstream1" {
		return "nats"
	}
	return kind
}

// runSynth measures one case.
func (e *benchEnv) runSynth(c synthCase) synthResult {
	res := synthResult{Case: c.String(), Sink: c.Sink, Size: c.Size, Stages: c.Stages}
	var err error
	if c.Sink == "raw" || c.Sink == "rawjson" || c.Sink == "rawcodec" {
		err = e.runRaw(c, &res)
	} else {
		err = e.runAgentSynth(c, &res)
	}
	if err != nil {
		res.Error = err.Error()
	}
	return res
}

// producing runs a producer until the returned stop is called; stop
// returns how many records it asked for.
func producing(rate, threads int) (p *synth.Producer, stop func() uint64) {
	p = &synth.Producer{Rate: rate, Threads: threads}
	return p, startProducer(p)
}

// startProducer starts p; the function it returns stops p and returns how many
// records p asked for.
func startProducer(p *synth.Producer) (stop func() uint64) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	return func() uint64 {
		cancel()
		<-done
		return p.Requested()
	}
}

func (e *benchEnv) runAgentSynth(c synthCase, res *synthResult) error {
	dir, err := e.scratch(c.String())
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
	maddr := fmt.Sprintf("127.0.0.1:%d", mport)
	var extra []string
	paddr := ""
	if e.profileDir != "" {
		pport, err := freePort()
		if err != nil {
			return err
		}
		paddr = fmt.Sprintf("127.0.0.1:%d", pport)
		extra = []string{"--pprof-listen", paddr}
	}
	a, err := startAgent(e.sluice, dir, maddr, e.agentConfig(c, dir, maddr, nport), extra...)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			a.stop(30 * time.Second)
		}
	}()
	if err := a.waitReady(2 * time.Minute); err != nil {
		return err
	}
	// stdout into a file grows by hundreds of MB/s: keep it short. The
	// agent appends (O_APPEND), so its writes go on at the new end.
	stopTrunc := truncating(filepath.Join(dir, "stdout"))
	defer stopTrunc()

	sent := func(s scrape) float64 { return s.sum("sluice_events_sent_total", "component", "sink", "name", "out") }
	var requested uint64
	// Warm up: a trickle until events come out of the sink.
	_, stopWarm := producing(2000, 1)
	err = waitMetric(maddr, 30*time.Second, func(s scrape) bool { return sent(s) >= 16 })
	requested += stopWarm()
	if err != nil {
		return fmt.Errorf("no event reached the sink: %w\n%s", err, a.logTail())
	}

	// Latency at a rate every configuration sustains.
	h0, err := getMetrics(maddr)
	if err != nil {
		return err
	}
	_, stopLat := producing(e.latRate, 1)
	time.Sleep(e.latDur)
	requested += stopLat()
	if err := e.drain(maddr); err != nil {
		return err
	}
	h1, err := getMetrics(maddr)
	if err != nil {
		return err
	}
	lat := histDelta(h0.histogram("sluice_sink_latency_seconds", "name", "out"), h1.histogram("sluice_sink_latency_seconds", "name", "out"))
	res.LatencyRate = e.latRate
	res.LatencyP50ms = quantile(0.5, lat) * 1000
	res.LatencyP99ms = quantile(0.99, lat) * 1000

	// Flat out.
	prod, stopFlat := producing(0, e.producers)
	time.Sleep(time.Second) // ramp up
	m0, p0, req0, err := sample(maddr, a.pid(), prod)
	if err != nil {
		stopFlat()
		return err
	}
	profiled := make(chan error, 1)
	if paddr != "" {
		go func() {
			profiled <- fetchCPUProfile(paddr, e.window, filepath.Join(e.profileDir, strings.ReplaceAll(c.String(), "/", "_")+".pprof"))
		}()
	} else {
		profiled <- nil
	}
	var rss []int64
	for end := time.Now().Add(e.window); time.Now().Before(end); {
		time.Sleep(200 * time.Millisecond)
		if ps, err := readProc(a.pid()); err == nil {
			rss = append(rss, ps.rss)
		}
	}
	m1, p1, req1, err := sample(maddr, a.pid(), prod)
	requested += stopFlat()
	if err != nil {
		return err
	}
	if err := <-profiled; err != nil {
		e.log("  no CPU profile: %v", err)
	}
	secs := m1.at.Sub(m0.at).Seconds()
	delivered := sent(m1) - sent(m0)
	res.EventsPerSec = delivered / secs
	res.RequestedPerS = float64(req1-req0) / secs
	if delivered > 0 {
		res.CPUPerEvent = float64(p1.cpu-p0.cpu) / delivered
		fileBytes := func(s scrape) float64 { return s.sum("sluice_sink_file_bytes_total", "name", "out") }
		res.BytesPerEvent = (fileBytes(m1) - fileBytes(m0)) / delivered
	}
	res.RSSSteadyMB = median(rss) / (1 << 20)

	if err := e.drain(maddr); err != nil {
		return err
	}
	// The kernel's loss counters are read every second: wait until every
	// record asked for is accounted for at the source.
	received := func(s scrape) float64 {
		return s.sum("sluice_events_received_total", "component", "source", "name", "synth")
	}
	waitMetric(maddr, 5*time.Second, func(s scrape) bool { return uint64(received(s)) >= requested })
	// A batch inside a stage or a sink's write is in no queue, and one
	// the worker has popped but not yet handed to the next component is
	// counted by neither (the edge counts it sent, the stage or sink
	// receives it a moment later): on a loaded machine that moment can be
	// long. So the final counters are those of a scrape that has settled
	// (settled) and that balances: every figure below comes from that one
	// scrape, since a loss record that the loss ticker queues between two
	// scrapes is in the sink's queue for a batch delay. Counters that do
	// not settle within 10s are reported as they are.
	stages := len(e.stageRefs(c.Stages))
	var prev, fin scrape
	waitMetric(maddr, 10*time.Second, func(s scrape) bool {
		ok, _ := balance(s, requested)
		ok = ok && settled(prev, s, stages)
		prev = s
		if ok {
			fin = s
		}
		return ok
	})
	if fin.series == nil {
		if fin, err = getMetrics(maddr); err != nil {
			return err
		}
	}
	pfin, _ := readProc(a.pid())
	res.RSSPeakMB = float64(pfin.hwm) / (1 << 20)
	res.Requested = requested
	res.KernelLost = uint64(fin.sum("sluice_events_dropped_total", "component", "source", "reason", "kernel"))
	if requested > 0 {
		res.KernelLostPct = 100 * float64(res.KernelLost) / float64(requested)
	}
	res.UserDrops = fin.drops([]string{"kernel", "filtered"})
	res.Balanced, res.BalanceNote = balance(fin, requested)
	stopped = true
	if _, err := a.stop(30 * time.Second); err != nil {
		return err
	}
	return nil
}

// balance checks the counters after a drained run: every record asked for
// reached the source or was counted lost in the kernel, and every
// component received = sent + dropped.
func balance(s scrape, requested uint64) (bool, string) {
	var notes []string
	recv := s.sum("sluice_events_received_total", "component", "source")
	if uint64(recv) != requested {
		notes = append(notes, fmt.Sprintf("source received %.0f of %d records asked for", recv, requested))
	}
	seen := map[string]bool{}
	for _, ser := range s.series {
		if ser.name != "sluice_events_received_total" {
			continue
		}
		comp := ser.labels["component"] + "/" + ser.labels["name"]
		if seen[comp] {
			continue
		}
		seen[comp] = true
		r := ser.value
		sent := s.sum("sluice_events_sent_total", "component", ser.labels["component"], "name", ser.labels["name"])
		dropped := s.sum("sluice_events_dropped_total", "component", ser.labels["component"], "name", ser.labels["name"])
		if r != sent+dropped {
			notes = append(notes, fmt.Sprintf("%s: received %.0f != sent %.0f + dropped %.0f", comp, r, sent, dropped))
		}
	}
	sort.Strings(notes)
	return len(notes) == 0, strings.Join(notes, "; ")
}

// settled reports whether nothing moved in the agent between scrapes
// prev and s, taken 100ms apart: the event counters are the same, no
// queue holds an event, and no batch is between two components (the
// pipeline's edge, its stages filter1..N in order, the sink "out"): each
// received what the one before it sent (the sink also gets loss
// records, so at least that).
func settled(prev, s scrape, stages int) bool {
	if prev.series == nil || s.sum("sluice_queue_events") != 0 {
		return false
	}
	for _, m := range []string{"sluice_events_received_total", "sluice_events_sent_total", "sluice_events_dropped_total"} {
		if prev.sum(m) != s.sum(m) {
			return false
		}
	}
	comp := func(m, kind, name string) float64 { return s.sum(m, "component", kind, "name", name) }
	sent := comp("sluice_events_sent_total", "pipeline", "bench")
	if comp("sluice_events_received_total", "pipeline", "bench") != comp("sluice_events_sent_total", "source", "synth") {
		return false
	}
	for i := range stages {
		name := fmt.Sprintf("filter%d", i+1)
		if comp("sluice_events_received_total", "stage", name) != sent {
			return false
		}
		sent = comp("sluice_events_sent_total", "stage", name)
	}
	return comp("sluice_events_received_total", "sink", "out") >= sent
}

func sample(maddr string, pid int, prod *synth.Producer) (scrape, procSample, uint64, error) {
	req := prod.Requested()
	m, err := getMetrics(maddr)
	if err != nil {
		return m, procSample{}, 0, err
	}
	p, err := readProc(pid)
	return m, p, req, err
}

// drain waits until the agent's queues are empty and its sink has
// stopped sending.
func (e *benchEnv) drain(maddr string) error {
	var last float64 = -1
	return waitMetric(maddr, 60*time.Second, func(s scrape) bool {
		q := s.sum("sluice_queue_events")
		sent := s.sum("sluice_events_sent_total", "component", "sink")
		done := q == 0 && sent == last
		last = sent
		return done
	})
}

// waitMetric scrapes every 100ms until cond holds.
func waitMetric(maddr string, timeout time.Duration, cond func(scrape) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		s, err := getMetrics(maddr)
		if err == nil && cond(s) {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("condition not met")
			}
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// truncating keeps a file that another process appends to below 64 MiB.
func truncating(path string) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if fi, err := os.Stat(path); err == nil && fi.Size() > 64<<20 {
				os.Truncate(path, 0)
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

func median(xs []int64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return float64(s[len(s)/2])
}

// fetchCPUProfile saves the agent's CPU profile over the next d to path.
func fetchCPUProfile(paddr string, d time.Duration, path string) error {
	c := http.Client{Timeout: d + 30*time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", paddr, max(1, int(d.Seconds()))))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
