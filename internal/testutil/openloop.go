package testutil

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openLoopEnv, set in a test binary's environment, makes
// RunOpenLoopIfAsked turn the process into an open loop at that rate.
const openLoopEnv = "SLUICE_TEST_OPEN_LOOP_RATE"

// OpenLoopPath is the file an open loop tries to open: it does not exist,
// so each open is a cheap failing syscall that trace_open reports.
const OpenLoopPath = "/nonexistent/sluice-open-loop"

// RunOpenLoopIfAsked is the first call of a TestMain whose tests use
// StartOpenLoop: in the child process StartOpenLoop starts it generates
// opens and exits; otherwise it returns at once.
func RunOpenLoopIfAsked() {
	v := os.Getenv(openLoopEnv)
	if v == "" {
		return
	}
	rate, err := strconv.Atoi(v)
	if err != nil || rate <= 0 {
		fmt.Fprintf(os.Stderr, "open loop: bad rate %q\n", v)
		os.Exit(2)
	}
	in := bufio.NewReader(os.Stdin)
	// Wait for the go-ahead: the tracer attaches in the meantime.
	if _, err := in.ReadByte(); err != nil {
		os.Exit(0)
	}
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, in) // until the parent closes stdin
		close(stop)
	}()
	start := time.Now()
	var opens uint64
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			fmt.Printf("opens=%d seconds=%.3f\n", opens, time.Since(start).Seconds())
			os.Exit(0)
		case <-tick.C:
		}
		// Catch up to the rate since the start: a late tick opens more.
		due := uint64(time.Since(start).Seconds() * float64(rate))
		for ; opens < due; opens++ {
			if fd, err := unix.Open(OpenLoopPath, unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
				unix.Close(fd)
			}
		}
	}
}

// OpenLoop is a child process that opens OpenLoopPath at a steady rate:
// a load of real kernel events from one process (its Pid), for tests that
// filter a gadget on it.
type OpenLoop struct {
	Pid   int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   strings.Builder
}

// StartOpenLoop starts an open loop of rate opens a second, idle until
// Go. The test binary must call RunOpenLoopIfAsked in its TestMain. The
// loop is killed at the end of the test if still running.
func StartOpenLoop(t testing.TB, rate int) *OpenLoop {
	t.Helper()
	l := &OpenLoop{cmd: exec.Command(os.Args[0], "-test.run=^$")}
	l.cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", openLoopEnv, rate))
	l.cmd.Stdout, l.cmd.Stderr = &l.out, os.Stderr
	var err error
	if l.stdin, err = l.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l.Pid = l.cmd.Process.Pid
	t.Cleanup(func() {
		if l.cmd.ProcessState == nil {
			l.cmd.Process.Kill()
			l.cmd.Wait()
		}
	})
	return l
}

// Go starts the opens.
func (l *OpenLoop) Go() error {
	_, err := l.stdin.Write([]byte{1})
	return err
}

// Stop ends the loop and returns how many opens it made and in how long.
func (l *OpenLoop) Stop() (opens uint64, took time.Duration, err error) {
	l.stdin.Close()
	if err := l.cmd.Wait(); err != nil {
		return 0, 0, fmt.Errorf("open loop: %w", err)
	}
	var secs float64
	if _, err := fmt.Sscanf(strings.TrimSpace(l.out.String()), "opens=%d seconds=%g", &opens, &secs); err != nil {
		return 0, 0, fmt.Errorf("open loop said %q: %w", l.out.String(), err)
	}
	return opens, time.Duration(secs * float64(time.Second)), nil
}
