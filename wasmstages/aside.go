package wasmstages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
)

// asideMinSize is the module size from which a swap compiles aside
// (compileAside). wazero takes 0.5 to 1 µs of CPU per byte of module: the C
// and Rust stages (20 to 70 KB) compile in tens of milliseconds, which no
// pipeline notices, while a Go stage (2 to 4 MB) takes one or two seconds
// of CPU, which a pipeline on a busy machine loses (BenchmarkSwapThroughput;
// see RATIONALE.md). A variable so that the benchmark can compare.
var asideMinSize = 128 << 10

// asideGrace is how long a compile may run aside at low priority before
// it is raised to normal priority: on a machine where many threads keep
// every core busy, a tenth of one thread's share is still little, and a
// swap must not wait for the machine to calm down. A Go stage took 10 to
// 30 s aside where two busy threads compete per core. A variable so that a
// test can shorten it.
var asideGrace = time.Minute

// asideEnv, set in the environment of the agent's own executable, makes it
// a compile helper (compileHelperMain) instead of what it is: the value is
// "1:" or "0:" (whether the runtime closes modules when their context is
// done, which is part of the cache key) followed by the cache directory.
const asideEnv = "SLUICE_WASMSTAGES_COMPILE_ASIDE"

// errNoAside is why a compile did not run aside: the caller compiles in
// the process as it would have without it.
var errNoAside = errors.New("cannot compile aside")

// compileAside compiles code into the on-disk compilation cache in dir, in
// a child process (the agent's own executable, see compileHelperMain) at
// low scheduling priority (asideNice), so that the compile takes the CPU
// the pipelines leave idle and little of the rest; the caller then loads
// the machine code from the cache in tens of milliseconds.
//
// A child rather than a thread of the agent at low priority: the Go
// runtime stops every thread of a process for its garbage collector, and
// a starved low-priority thread that compiles held the whole agent up at
// every collection (at SCHED_IDLE, 1-second windows of a saturated
// pipeline fell to nothing while the compile waited for CPU).
//
// If the compile has not finished after asideGrace, the child is raised
// to the agent's priority, or, where the agent may not raise a priority
// (no CAP_SYS_NICE), stopped with errNoAside. compileAside returns the
// helper's report (its priority at the end), ErrCompile for a module that
// does not compile, or why it failed otherwise (the caller then compiles
// in the process).
func compileAside(ctx context.Context, dir string, code []byte, closeOnContextDone bool) (string, error) {
	if !asideSupported {
		return "", errNoAside
	}
	exe := asideExecutable()
	flag := "0:"
	if closeOnContextDone {
		flag = "1:"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	// One P and nothing of the agent's environment: the helper only
	// compiles, and a second thread would only collect garbage sooner.
	cmd.Env = []string{asideEnv + "=" + flag + dir, "GOMAXPROCS=1"}
	cmd.Stdin = bytes.NewReader(code)
	var out, errOut limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = time.Second
	if err := startAside(cmd); err != nil {
		return "", fmt.Errorf("%w: start %s: %w", errNoAside, exe, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	grace := time.NewTimer(asideGrace)
	defer grace.Stop()
	var err error
	select {
	case err = <-waited:
	case <-grace.C:
		if rerr := raiseAside(cmd.Process.Pid); rerr != nil {
			cancel()
			<-waited
			return "", fmt.Errorf("%w: not done after %s at low priority, and cannot raise it: %w", errNoAside, asideGrace, rerr)
		}
		err = <-waited
	}
	if msg := strings.TrimSpace(errOut.String()); cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == exitNoCompile {
		return "", fmt.Errorf("%w: %s", ErrCompile, msg)
	} else if err != nil {
		return "", fmt.Errorf("compile aside: %w: %s", err, msg)
	}
	return strings.TrimSpace(out.String()), nil
}

// exitNoCompile is the helper's exit code for a module that does not
// compile.
const exitNoCompile = 3

// compileHelperMain is the agent's executable started by compileAside: it
// compiles the module on stdin into the cache and reports its priority at
// the end on stdout. It returns the exit code.
func compileHelperMain(arg string) int {
	closeOnContextDone, dir, ok := strings.Cut(arg, ":")
	if !ok || dir == "" {
		fmt.Fprintf(os.Stderr, "%s: want 0:DIR or 1:DIR, got %q\n", asideEnv, arg)
		return 2
	}
	code, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "read module: %v\n", err)
		return 1
	}
	ctx := context.Background()
	cache, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "open cache: %v\n", err)
		return 1
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(cache).
		WithCloseOnContextDone(closeOnContextDone == "1"))
	if _, err := rt.CompileModule(ctx, code); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if strings.HasPrefix(err.Error(), "compilationcache:") {
			return 1 // the caller clears the cache and compiles
		}
		return exitNoCompile
	}
	fmt.Printf("nice %d\n", currentNice())
	return 0
}

// limitedBuffer keeps the first 4 KiB written to it.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
