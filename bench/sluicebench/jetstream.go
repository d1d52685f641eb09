package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
	"github.com/sluice-dev/sluice/sinks"
)

// jetStreamResult compares ways of publishing the same events to one
// JetStream stream of an in-process server, in one run: a synchronous
// loop (publish, wait for the ack, repeat), nats.go's own asynchronous
// loop with the sink's window of outstanding acks, and sluice's NATS sink
// (batches of 256 events, as the pipeline hands them over).
type jetStreamResult struct {
	SyncPerSec      float64 `json:"sync_per_sec"`
	BareAsyncPerSec float64 `json:"bare_async_per_sec"`
	SinkPerSec      float64 `json:"sink_per_sec"`
	SinkOfSync      float64 `json:"sink_of_sync"`
	BareOfSync      float64 `json:"bare_async_of_sync"`
	// The sink's one-event-per-message rate of nats.go's async loop's.
	SinkOfBare float64 `json:"sink_of_bare_async"`
	// The sink as the built-in config has it, 100 events per message
	// (batch {}), in events/s; of the sync loop over the whole run and
	// in each round (sync and batched phases of one round side by side).
	SinkBatchedPerSec       float64   `json:"sink_batched_events_per_sec"`
	SinkBatchedOfSync       float64   `json:"sink_batched_of_sync"`
	SinkBatchedOfSyncRounds []float64 `json:"sink_batched_of_sync_by_round"`
	// Process CPU per event of the batched sink.
	SinkBatchedCPUPerEventUS float64 `json:"sink_batched_cpu_us_per_event"`
	// CPU time of the whole process (client, sink and server) per
	// message in each phase, and the share of the sync phase's wall time
	// the process spent waiting rather than on a CPU: asynchronous
	// publishing can only win back that wait, so on C cores it is at most
	// C x (sync time per message) / (CPU per message) faster.
	SyncCPUPerMsgUS  float64 `json:"sync_cpu_us_per_msg"`
	AsyncCPUPerMsgUS float64 `json:"async_cpu_us_per_msg"`
	SinkCPUPerMsgUS  float64 `json:"sink_cpu_us_per_msg"`
	SyncWaitPct      float64 `json:"sync_wait_pct"`
	AsyncBound       float64 `json:"async_bound_of_sync"`
	// Where the sink's phase spends CPU, by package (flat, from a CPU
	// profile of the whole process: client, sink and server).
	SinkCPU []cpuShare `json:"sink_cpu_by_package,omitempty"`
	// The same profile by the part of the program each sample was spent
	// for (allocation, GC assists and syscalls count for their caller);
	// and the batched sink's phase, likewise.
	SinkCPUByCaller        []cpuShare `json:"sink_cpu_by_caller,omitempty"`
	SinkBatchedCPUByCaller []cpuShare `json:"sink_batched_cpu_by_caller,omitempty"`
	Error                  string     `json:"error,omitempty"`
}

type cpuShare struct {
	Package string  `json:"package"`
	Pct     float64 `json:"pct"`
}

func (e *benchEnv) runJetStream(phase time.Duration, rounds int) jetStreamResult {
	var res jetStreamResult
	if err := e.jetStream(phase, rounds, &res); err != nil {
		res.Error = err.Error()
	}
	return res
}

// jsEvent is an event of about 200 bytes, as the sink benchmarks use.
func jsEvent(seq uint64) pipeline.Event {
	b := codec.AppendMapHeader(nil, 7)
	b = codec.AppendString(codec.AppendString(b, "time"), "2026-11-22T10:00:00.123456789Z")
	b = codec.AppendString(codec.AppendString(b, "host"), "bench-host")
	b = codec.AppendString(codec.AppendString(b, "source"), "exec")
	b = codec.AppendString(codec.AppendString(b, "gadget"), "trace_exec")
	b = codec.AppendUint(codec.AppendString(b, "seq"), seq)
	b = codec.AppendString(codec.AppendString(b, "comm"), "bench")
	b = codec.AppendString(codec.AppendString(b, "args"), strings.Repeat("a", 90))
	return pipeline.Event{Data: b, Source: "exec", Seq: seq}
}

func (e *benchEnv) jetStream(phase time.Duration, rounds int, res *jetStreamResult) error {
	dir, err := e.scratch("jetstream")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		return err
	}
	go srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		return errors.New("nats server not ready")
	}
	ctx := context.Background()
	sink, err := sinks.NewNATS(ctx, "bench", sinks.NATSOptions{URL: srv.ClientURL(), Subject: "bench.{source}", Host: "h", BootID: "b",
		JetStream: &sinks.JetStreamOptions{Stream: "BENCH", Create: true}})
	if err != nil {
		return err
	}
	defer sink.Close(ctx)
	batched, err := sinks.NewNATS(ctx, "bench-batched", sinks.NATSOptions{URL: srv.ClientURL(), Subject: "bench.{source}", Host: "h", BootID: "b",
		BatchMaxEvents: 100, JetStream: &sinks.JetStreamOptions{Stream: "BENCH", Create: true}})
	if err != nil {
		return err
	}
	defer batched.Close(ctx)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	syncJS, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	nc2, err := nats.Connect(srv.ClientURL())
	if err != nil {
		return err
	}
	defer nc2.Close()
	asyncJS, err := jetstream.New(nc2, jetstream.WithPublishAsyncMaxPending(sinks.DefaultMaxPending))
	if err != nil {
		return err
	}
	payload := jsEvent(1).Data
	var seq uint64
	// The sink's writes are as large as it asks the pipeline for.
	writeSize, _ := sink.WriteBatch()
	writeSize = cmp.Or(writeSize, pipeline.DefaultBatchSize)
	// The events are made once, as the pipeline hands them over: the
	// phases measure publishing, not making events. Each Write renumbers
	// them, so that every message has a dedup id of its own.
	batch := make([]pipeline.Event, writeSize)
	for i := range batch {
		batch[i] = jsEvent(uint64(i + 1))
	}
	batchedSize, _ := batched.WriteBatch()
	batchedBatch := make([]pipeline.Event, cmp.Or(batchedSize, pipeline.DefaultBatchSize))
	for i := range batchedBatch {
		batchedBatch[i] = jsEvent(uint64(i + 1))
	}
	batchedMsgs := 0
	syncPhase := &jsPhase{publish: func() (int, error) {
		// Synchronous: one message at a time.
		seq++
		m := nats.NewMsg("bench.exec")
		m.Data = payload
		m.Header.Set(nats.MsgIdHdr, "sync."+strconv.FormatUint(seq, 10))
		if _, err := syncJS.PublishMsg(ctx, m); err != nil {
			return 0, fmt.Errorf("sync publish: %w", err)
		}
		return 1, nil
	}}
	asyncPhase := &jsPhase{publish: func() (int, error) {
		// nats.go's async loop, 256 messages per call, awaited at the
		// end of the slice.
		for range 256 {
			seq++
			m := nats.NewMsg("bench.exec")
			m.Data = payload
			m.Header.Set(nats.MsgIdHdr, "async."+strconv.FormatUint(seq, 10))
			for {
				_, err := asyncJS.PublishMsgAsync(m)
				if err == nil {
					break
				}
				if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
					return 0, fmt.Errorf("async publish: %w", err)
				}
				<-asyncJS.PublishAsyncComplete()
			}
		}
		return 256, nil
	}, drain: func() { <-asyncJS.PublishAsyncComplete() }}
	sinkPhase := &jsPhase{profile: "sink", publish: func() (int, error) {
		// The sink, one event per message; its Write returns once every
		// ack of the batch is in.
		for i := range batch {
			seq++
			batch[i].Seq = seq
		}
		if err := sink.Write(ctx, batch); err != nil {
			return 0, fmt.Errorf("sink write: %w", err)
		}
		return len(batch), nil
	}}
	batchedPhase := &jsPhase{profile: "batched", publish: func() (int, error) {
		// The sink as the built-in config has it: 100 events per message.
		for i := range batchedBatch {
			seq++
			batchedBatch[i].Seq = seq
		}
		if err := batched.Write(ctx, batchedBatch); err != nil {
			return 0, fmt.Errorf("batched sink write: %w", err)
		}
		batchedMsgs += (len(batchedBatch) + 99) / 100
		return len(batchedBatch), nil
	}}
	phases := []*jsPhase{syncPhase, asyncPhase, sinkPhase, batchedPhase}
	// The phases take turns in slices of a tenth of a phase, so that the
	// load of a shared machine, which changes by the second, weighs on
	// all of them alike; a round's ratio compares its own slices.
	slice := phase / 10
	for range rounds {
		syncRound, batchedRound := *syncPhase, *batchedPhase
		for range 10 {
			for _, p := range phases {
				if err := p.run(slice, dir); err != nil {
					return err
				}
			}
		}
		syncRate := float64(syncPhase.n-syncRound.n) / (syncPhase.t - syncRound.t).Seconds()
		batchedRate := float64(batchedPhase.n-batchedRound.n) / (batchedPhase.t - batchedRound.t).Seconds()
		res.SinkBatchedOfSyncRounds = append(res.SinkBatchedOfSyncRounds, math.Round(batchedRate/syncRate*10)/10)
	}
	syncN, asyncN, sinkN, batchedN := syncPhase.n, asyncPhase.n, sinkPhase.n, batchedPhase.n
	syncT, asyncT, sinkT, batchedT := syncPhase.t, asyncPhase.t, sinkPhase.t, batchedPhase.t
	syncCPU, asyncCPU, sinkCPU, batchedCPU := syncPhase.cpu, asyncPhase.cpu, sinkPhase.cpu, batchedPhase.cpu
	// Every message acknowledged is in the stream, once.
	st, err := syncJS.Stream(ctx, "BENCH")
	if err != nil {
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	if want := uint64(syncN + asyncN + sinkN + batchedMsgs); info.State.Msgs != want {
		return fmt.Errorf("the stream holds %d messages, want %d", info.State.Msgs, want)
	}
	res.SinkBatchedPerSec = float64(batchedN) / batchedT.Seconds()
	res.SyncCPUPerMsgUS = float64(syncCPU) / float64(syncN) / 1e3
	res.AsyncCPUPerMsgUS = float64(asyncCPU) / float64(asyncN) / 1e3
	res.SinkCPUPerMsgUS = float64(sinkCPU) / float64(sinkN) / 1e3
	res.SinkBatchedCPUPerEventUS = float64(batchedCPU) / float64(batchedN) / 1e3
	res.SyncWaitPct = 100 * max(0, 1-float64(syncCPU)/float64(syncT))
	res.AsyncBound = float64(runtime.NumCPU()) * (float64(syncT) / float64(syncN)) / (float64(asyncCPU) / float64(asyncN))
	res.SyncPerSec = float64(syncN) / syncT.Seconds()
	res.BareAsyncPerSec = float64(asyncN) / asyncT.Seconds()
	res.SinkPerSec = float64(sinkN) / sinkT.Seconds()
	res.SinkOfSync = res.SinkPerSec / res.SyncPerSec
	res.BareOfSync = res.BareAsyncPerSec / res.SyncPerSec
	res.SinkOfBare = res.SinkPerSec / res.BareAsyncPerSec
	res.SinkBatchedOfSync = res.SinkBatchedPerSec / res.SyncPerSec
	res.SinkCPU = cpuByPackage(sinkPhase.profiles...)
	res.SinkCPUByCaller = cpuByCaller(sinkPhase.profiles...)
	res.SinkBatchedCPUByCaller = cpuByCaller(batchedPhase.profiles...)
	return nil
}

// jsPhase is one way of publishing, measured over the slices it ran.
type jsPhase struct {
	publish func() (events int, err error)
	drain   func() // waits for what publish left in flight, if anything
	// profile, when set, names CPU profiles of every slice (files in the
	// scratch directory, listed in profiles).
	profile  string
	profiles []string
	n        int
	t, cpu   time.Duration
}

// run publishes for d (rounded up to a whole call of publish).
func (p *jsPhase) run(d time.Duration, dir string) error {
	var prof *os.File
	if p.profile != "" {
		var err error
		if prof, err = os.Create(filepath.Join(dir, fmt.Sprintf("cpu-%s-%d.pb.gz", p.profile, len(p.profiles)))); err != nil {
			return err
		}
		defer prof.Close()
		if err := pprof.StartCPUProfile(prof); err != nil {
			return err
		}
		p.profiles = append(p.profiles, prof.Name())
		defer pprof.StopCPUProfile()
	}
	c0, t0 := processCPU(), time.Now()
	for time.Since(t0) < d {
		n, err := p.publish()
		if err != nil {
			return err
		}
		p.n += n
	}
	if p.drain != nil {
		p.drain()
	}
	p.t += time.Since(t0)
	p.cpu += processCPU() - c0
	return nil
}

// cpuByPackage groups a CPU profile's flat time by package, from `go tool
// pprof -top`; nil when the go tool is not at hand.
func cpuByPackage(profiles ...string) []cpuShare {
	if len(profiles) == 0 {
		return nil
	}
	out, err := exec.Command("go", append([]string{"tool", "pprof", "-top", "-nodecount=100000"}, profiles...)...).Output()
	if err != nil {
		return nil
	}
	byPkg := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || !strings.HasSuffix(f[1], "%") {
			continue
		}
		pct, err := strconv.ParseFloat(strings.TrimSuffix(f[1], "%"), 64)
		if err != nil {
			continue
		}
		byPkg[packageGroup(strings.Join(f[5:], " "))] += pct
	}
	var shares []cpuShare
	for k, v := range byPkg {
		shares = append(shares, cpuShare{k, v})
	}
	sort.Slice(shares, func(i, j int) bool { return shares[i].Pct > shares[j].Pct })
	return shares
}

// cpuByCaller groups a CPU profile's samples by the part of the program
// they were spent for: the frame nearest the leaf that belongs to sluice,
// nats.go or the server, so that allocation, GC assists, locks and
// syscalls count for the code that called them. Samples with no such frame
// are the Go runtime on its own (background GC, the scheduler) or other
// code (the benchmark's loop, the standard library). nil when the go tool
// is not at hand.
func cpuByCaller(profiles ...string) []cpuShare {
	if len(profiles) == 0 {
		return nil
	}
	out, err := exec.Command("go", append([]string{"tool", "pprof", "-traces"}, profiles...)...).Output()
	if err != nil {
		return nil
	}
	byPart := map[string]float64{}
	total := 0.0
	var value float64
	var frames []string
	flush := func() {
		if value > 0 {
			byPart[callerOf(frames)] += value
			total += value
		}
		value, frames = 0, frames[:0]
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 0:
		case strings.HasPrefix(f[0], "-----------+"):
			flush()
		case len(f) >= 2 && isDuration(f[0]):
			flush()
			d, _ := time.ParseDuration(f[0])
			value = float64(d)
			frames = append(frames, f[1])
		case value > 0:
			frames = append(frames, f[0])
		}
	}
	flush()
	if total == 0 {
		return nil
	}
	var shares []cpuShare
	for k, v := range byPart {
		shares = append(shares, cpuShare{k, 100 * v / total})
	}
	sort.Slice(shares, func(i, j int) bool { return shares[i].Pct > shares[j].Pct })
	return shares
}

func isDuration(s string) bool {
	_, err := time.ParseDuration(s)
	return err == nil
}

// callerOf names the part of the program a sample's stack (leaf first) was
// spent for.
func callerOf(frames []string) string {
	runtimeOnly := true
	for _, fn := range frames {
		switch g := packageGroup(fn); g {
		case "nats-server", "nats.go (client)", "sluice":
			return g
		case "Go runtime (scheduler, GC, memory)", "syscalls":
		default:
			if strings.HasPrefix(fn, "main.") {
				return "the benchmark's loop"
			}
			runtimeOnly = false
		}
	}
	if runtimeOnly {
		return "Go runtime on its own (background GC, scheduler)"
	}
	return "other"
}

// packageGroup names the part of the program a function belongs to.
func packageGroup(fn string) string {
	switch {
	case strings.HasPrefix(fn, "github.com/nats-io/nats-server"):
		return "nats-server"
	case strings.HasPrefix(fn, "github.com/nats-io/nats.go"), strings.HasPrefix(fn, "github.com/nats-io/nats%2ego"): // profiles escape the dot
		return "nats.go (client)"
	case strings.HasPrefix(fn, "github.com/sluice-dev/sluice"):
		return "sluice"
	case strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "runtime/"):
		return "Go runtime (scheduler, GC, memory)"
	case strings.HasPrefix(fn, "syscall.") || strings.HasPrefix(fn, "internal/runtime/syscall") || strings.HasPrefix(fn, "internal/poll"):
		return "syscalls"
	case strings.HasPrefix(fn, "crypto/") || strings.HasPrefix(fn, "github.com/minio/highwayhash"):
		return "hashing"
	}
	return "other"
}

// processCPU is the user and system time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
