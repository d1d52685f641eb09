package sinks

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/pipeline"
)

// openBatch is n open events from seq first.
func openBatch(first uint64, n int) []pipeline.Event {
	b := make([]pipeline.Event, n)
	for i := range b {
		b[i] = openEvent(first+uint64(i), "cat", "/etc/hosts", 3)
	}
	return b
}

// TestStdoutBlockedReader: stdout is a pipe nobody reads. Once its buffer
// is full, a Write returns when its context ends instead of blocking with
// the pipe, the next is refused at once, and Close returns within its
// deadline saying a write is still blocked. When the reader reads again,
// the sink writes again.
func TestStdoutBlockedReader(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	s, err := NewStdout("console", w, StdoutOptions{Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	const wait = 200 * time.Millisecond
	write := func() (error, time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- s.Write(ctx, openBatch(1, 100)) }()
		select {
		case err := <-done:
			return err, time.Since(start)
		case <-time.After(20 * time.Second):
			t.Fatal("Write blocked 20s with a 200ms context")
		}
		return nil, 0
	}
	var err1 error
	for i := 0; err1 == nil; i++ {
		if i > 10000 {
			t.Fatal("the pipe never filled")
		}
		var took time.Duration
		if err1, took = write(); err1 != nil && took > wait+time.Second {
			t.Errorf("the blocked Write took %s with a %s context", took, wait)
		}
	}
	if !errors.Is(err1, errBlocked) || !errors.Is(err1, context.DeadlineExceeded) {
		t.Errorf("blocked Write: %v; want errBlocked and the deadline", err1)
	}
	if err, took := write(); !errors.Is(err, errBlocked) || took > wait/2 {
		t.Errorf("Write behind a blocked one: %v after %s; want errBlocked at once", err, took)
	}
	waitUntil(t, "Health to report the reader", 5*time.Second, func() bool {
		err := s.Health()
		return err != nil && strings.Contains(err.Error(), "does not read")
	})
	// The reader comes back: drain the pipe until the stuck write is done.
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := r.Read(buf); err != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err, _ := write()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after the reader came back: %v", err)
		}
	}
	if err := s.Health(); err != nil {
		t.Errorf("Health() = %v once the reader reads again", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestStdoutCloseBlockedReader: Close of a sink whose last write is stuck
// on a reader that never reads returns within its deadline, with an error.
func TestStdoutCloseBlockedReader(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	s, _ := NewStdout("console", w, StdoutOptions{Format: "json"})
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		done := make(chan error, 1)
		go func() { done <- s.Write(ctx, openBatch(1, 100)) }()
		var err error
		select {
		case err = <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("Write blocked 20s with a 100ms context")
		}
		cancel()
		if err != nil {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Close(ctx); err == nil || !strings.Contains(err.Error(), "blocked") {
		t.Errorf("Close: %v; want an error about the blocked write", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Close took %s with a 300ms deadline", took)
	}
	r.Close() // the stuck write fails (EPIPE): its goroutine ends
}

// TestShutdownWithBlockedStdout: a pipeline with a stdout sink nobody reads
// and a file sink stops within its grace period when cancelled; the stdout
// sink's unwritten events are counted as dropped (received = sent +
// dropped), and the file sink writes on.
func TestShutdownWithBlockedStdout(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	console, _ := NewStdout("console", w, StdoutOptions{Format: "json"})
	dir := t.TempDir()
	file, err := NewFile("audit", FileOptions{Path: filepath.Join(dir, "events.jsonl"), Format: "json", Fsync: "never"})
	if err != nil {
		t.Fatal(err)
	}
	reg := pipeline.NewRegistry()
	src := &numberedSource{name: "exec", stop: make(chan struct{})}
	p, err := pipeline.New(pipeline.Spec{Name: "p", Sources: []pipeline.Source{src}, Sinks: []pipeline.Sink{console, file}, Metrics: reg,
		Queue: pipeline.QueueConfig{MaxEvents: 4096, Policy: pipeline.DropNewest}, LossInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	const grace = 2 * time.Second
	go func() { ran <- p.Run(ctx, grace) }()
	con := reg.Component("sink", "console")
	waitUntil(t, "stdout blocked", 20*time.Second, func() bool { return con.DroppedTotal() > 0 })
	close(src.stop)
	cancel()
	start := time.Now()
	select {
	case err := <-ran:
		if err == nil || !strings.Contains(err.Error(), "blocked") {
			t.Errorf("Run: %v; want the stdout sink's close error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the pipeline did not stop within 30s of a 2s grace period")
	}
	if took := time.Since(start); took > grace+time.Second {
		t.Errorf("shutdown took %s with a %s grace period", took, grace)
	}
	if rcv, sent, dropped := con.Received.Value(), con.Sent.Value(), con.DroppedTotal(); rcv != sent+dropped || dropped == 0 {
		t.Errorf("stdout sink: received %d, sent %d, dropped %d", rcv, sent, dropped)
	}
	// The file sink went on: what it did not write, its queue dropped
	// (the source is a firehose), never a failed write.
	fm := reg.Component("sink", "audit")
	if fm.Sent.Value() == 0 || fm.Received.Value() != fm.Sent.Value()+fm.DroppedTotal() || fm.Dropped(pipeline.ReasonSinkError).Value() != 0 {
		t.Errorf("file sink: received %d, sent %d, dropped %d (sink_error %d)", fm.Received.Value(), fm.Sent.Value(), fm.DroppedTotal(), fm.Dropped(pipeline.ReasonSinkError).Value())
	}
}

// TestStdoutClosedPipeFailsAlone runs a child process (this test binary)
// whose stdout is a pipe the parent closes after the first line. The
// child's stdout sink then fails (EPIPE, counted) while its file sink goes
// on; the process must not be killed by SIGPIPE.
func TestStdoutClosedPipeFailsAlone(t *testing.T) {
	if dir := os.Getenv("SLUICE_TEST_STDOUT_CHILD"); dir != "" {
		stdoutChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStdoutClosedPipeFailsAlone$")
	cmd.Env = append(os.Environ(), "SLUICE_TEST_STDOUT_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatalf("no line from the child: %v", err)
	}
	out.Close() // the reader goes away
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("the child was killed by %v (stderr: %s)", ws.Signal(), stderr.String())
	}
	if err != nil {
		t.Fatalf("child: %v (stderr: %s)", err, stderr.String())
	}
	report, err := os.ReadFile(filepath.Join(dir, "report"))
	if err != nil || !strings.HasPrefix(string(report), "stdout failed: ") || !strings.Contains(string(report), "broken pipe") || !strings.HasSuffix(string(report), "file ok\n") {
		t.Errorf("child report %q (%v); want the stdout sink failed alone and the file sink wrote on", report, err)
	}
}

// stdoutChild is the child of TestStdoutClosedPipeFailsAlone: it writes to
// stdout until that fails, then once more to a file sink, and reports.
func stdoutChild(dir string) {
	console, _ := NewStdout("console", os.Stdout, StdoutOptions{Format: "json"})
	file, _ := NewFile("audit", FileOptions{Path: filepath.Join(dir, "events.jsonl"), Format: "json", Fsync: "never"})
	var failed atomic.Value
	for i := uint64(1); i < 1_000_000; i++ {
		if err := console.Write(context.Background(), openBatch(i, 1)); err != nil {
			failed.Store(err)
			break
		}
	}
	report := "stdout never failed\n"
	if err, ok := failed.Load().(error); ok {
		report = "stdout failed: " + err.Error() + "\n"
		if err := console.Write(context.Background(), openBatch(1, 1)); err == nil {
			report += "stdout wrote again after failing\n"
		}
	}
	if err := file.Write(context.Background(), openBatch(1, 10)); err == nil {
		report += "file ok\n"
	}
	file.Close(context.Background())
	os.WriteFile(filepath.Join(dir, "report"), []byte(report), 0o600)
	os.Exit(0)
}
