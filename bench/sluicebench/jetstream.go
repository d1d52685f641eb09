package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
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
	// The sink with 100 events per message (batch {}), in events/s.
	SinkBatchedPerSec float64 `json:"sink_batched_events_per_sec"`
	SinkBatchedOfSync float64 `json:"sink_batched_of_sync"`
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
	Error   string     `json:"error,omitempty"`
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
	var syncN, asyncN, sinkN, batchedN int
	var syncT, asyncT, sinkT, batchedT time.Duration
	var syncCPU, asyncCPU, sinkCPU time.Duration
	// The sink's writes are as large as it asks the pipeline for.
	writeSize, _ := sink.WriteBatch()
	writeSize = cmp.Or(writeSize, pipeline.DefaultBatchSize)
	batch := make([]pipeline.Event, writeSize)
	var prof bytes.Buffer
	for round := range rounds {
		// Synchronous: one message at a time.
		c0 := processCPU()
		t0 := time.Now()
		for time.Since(t0) < phase {
			seq++
			m := nats.NewMsg("bench.exec")
			m.Data = payload
			m.Header.Set(nats.MsgIdHdr, "sync."+strconv.FormatUint(seq, 10))
			if _, err := syncJS.PublishMsg(ctx, m); err != nil {
				return fmt.Errorf("sync publish: %w", err)
			}
			syncN++
		}
		syncT += time.Since(t0)
		syncCPU += processCPU() - c0
		// nats.go's async loop, awaited at the end of the phase.
		c0 = processCPU()
		t0 = time.Now()
		for time.Since(t0) < phase {
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
					return fmt.Errorf("async publish: %w", err)
				}
				<-asyncJS.PublishAsyncComplete()
			}
			asyncN++
		}
		<-asyncJS.PublishAsyncComplete()
		asyncT += time.Since(t0)
		asyncCPU += processCPU() - c0
		// The sink, batch by batch; its Write returns once every ack of
		// the batch is in.
		if round == rounds-1 {
			pprof.StartCPUProfile(&prof)
		}
		c0 = processCPU()
		t0 = time.Now()
		for time.Since(t0) < phase {
			for i := range batch {
				seq++
				batch[i] = jsEvent(seq)
			}
			if err := sink.Write(ctx, batch); err != nil {
				return fmt.Errorf("sink write: %w", err)
			}
			sinkN += len(batch)
		}
		sinkT += time.Since(t0)
		sinkCPU += processCPU() - c0
		if round == rounds-1 {
			pprof.StopCPUProfile()
		}
		// The sink again, 100 events per message.
		t0 = time.Now()
		for time.Since(t0) < phase {
			for i := range batch {
				seq++
				batch[i] = jsEvent(seq)
			}
			if err := batched.Write(ctx, batch); err != nil {
				return fmt.Errorf("batched sink write: %w", err)
			}
			batchedN += len(batch)
		}
		batchedT += time.Since(t0)
	}
	res.SinkBatchedPerSec = float64(batchedN) / batchedT.Seconds()
	res.SyncCPUPerMsgUS = float64(syncCPU) / float64(syncN) / 1e3
	res.AsyncCPUPerMsgUS = float64(asyncCPU) / float64(asyncN) / 1e3
	res.SinkCPUPerMsgUS = float64(sinkCPU) / float64(sinkN) / 1e3
	res.SyncWaitPct = 100 * max(0, 1-float64(syncCPU)/float64(syncT))
	res.AsyncBound = float64(runtime.NumCPU()) * (float64(syncT) / float64(syncN)) / (float64(asyncCPU) / float64(asyncN))
	res.SyncPerSec = float64(syncN) / syncT.Seconds()
	res.BareAsyncPerSec = float64(asyncN) / asyncT.Seconds()
	res.SinkPerSec = float64(sinkN) / sinkT.Seconds()
	res.SinkOfSync = res.SinkPerSec / res.SyncPerSec
	res.BareOfSync = res.BareAsyncPerSec / res.SyncPerSec
	res.SinkBatchedOfSync = res.SinkBatchedPerSec / res.SyncPerSec
	path := filepath.Join(dir, "cpu.pb.gz")
	if err := os.WriteFile(path, prof.Bytes(), 0o644); err == nil {
		res.SinkCPU = cpuByPackage(path)
	}
	return nil
}

// cpuByPackage groups a CPU profile's flat time by package, from `go tool
// pprof -top`; nil when the go tool is not at hand.
func cpuByPackage(profile string) []cpuShare {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=100000", profile).Output()
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

// packageGroup names the part of the program a function belongs to.
func packageGroup(fn string) string {
	switch {
	case strings.HasPrefix(fn, "github.com/nats-io/nats-server"):
		return "nats-server"
	case strings.HasPrefix(fn, "github.com/nats-io/nats.go"):
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
