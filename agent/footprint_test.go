package agent

import (
	"bufio"
	"context"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
	"github.com/sluice-dev/sluice/stages"
	"github.com/sluice-dev/sluice/wasmstages"
)

// inFreshProcess runs the calling test alone in a child process (this
// test binary) and reports whether it did so, in which case the caller
// returns: the child runs the test's body. Tests that account for every
// executable mapping of the process need one that ran nothing else: the
// stages earlier tests compiled stay mapped until the GC finalizes them
// (TestFileBackCode counted 24 KiB of another test's moved code under
// go test -count=3).
func inFreshProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv("SLUICE_TEST_FRESH_PROCESS") == t.Name() {
		return false
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "SLUICE_TEST_FRESH_PROCESS="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s in a child process: %v\n%s", t.Name(), err, out)
	}
	return true
}

// codeFileIn reports whether m maps one of the unnamed files fileBackCode
// made in dir (shown as DIR/#INODE (deleted)).
func codeFileIn(m mapping, dir string) bool {
	return strings.HasPrefix(m.name, dir+"/") && strings.HasSuffix(m.name, " (deleted)")
}

// mapping is one mapping of /proc/self/smaps: its range, permissions and
// name, the bytes of it that are resident, and whether it is advised
// MADV_RANDOM (VmFlags rr).
type mapping struct {
	addr, perms, name string
	size, rss         int64
	randomRead        bool
}

func smaps(t *testing.T) []mapping {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			out = append(out, mapping{addr: fields[0], perms: fields[1], name: strings.Join(fields[5:], " ")})
			continue
		}
		if len(out) > 0 && fields[0] == "VmFlags:" {
			out[len(out)-1].randomRead = slices.Contains(fields[1:], "rr")
		}
		if len(out) > 0 && len(fields) >= 2 && (fields[0] == "Rss:" || fields[0] == "Size:") {
			n, _ := strconv.ParseInt(fields[1], 10, 64)
			if fields[0] == "Rss:" {
				out[len(out)-1].rss = n << 10
			} else {
				out[len(out)-1].size = n << 10
			}
		}
	}
	return out
}

// codeDir makes a directory for fileBackCode, removed after the test,
// and returns its absolute path (as /proc/self/smaps names its files).
// Not t.TempDir: /tmp may be a tmpfs, which fileBackCode leaves alone.
func codeDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp(".", "codefile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func redactEvent(t *testing.T, s *wasmstages.Stage) string {
	t.Helper()
	b := codec.AppendMapHeader(nil, 1)
	b = codec.AppendString(b, "args")
	b = codec.AppendArrayHeader(b, 2)
	b = codec.AppendString(b, "mysql")
	b = codec.AppendString(b, "--password=hunter2")
	out, err := s.Process(context.Background(), []pipeline.Event{{Data: b, Source: "src", Seq: 1}}, nil)
	if err != nil || len(out) != 1 {
		t.Fatalf("process: %d events, %v", len(out), err)
	}
	var m struct {
		Args []string `msgpack:"args"`
	}
	if err := msgpack.Unmarshal(out[0].Data, &m); err != nil {
		t.Fatal(err)
	}
	return strings.Join(m.Args, " ")
}

// The compiled code of a Go stage moves onto a file at the same addresses:
// the stage keeps working, no anonymous executable mapping is left, and
// only the pages that ran are resident.
func TestFileBackCode(t *testing.T) {
	if inFreshProcess(t) {
		return
	}
	module, _ := stages.Builtin("redact")
	s, err := wasmstages.New(context.Background(), wasmstages.Config{Name: "redact", ModuleBytes: module, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	const want = "mysql --password=****"
	if got := redactEvent(t, s); got != want {
		t.Fatalf("before: %q, want %q", got, want)
	}
	var anon int64
	for _, m := range smaps(t) {
		if m.perms == "r-xp" && m.name == "" {
			anon += m.size
		}
	}
	if anon < 1<<20 {
		t.Fatalf("%d bytes of anonymous executable memory after compiling a Go stage, want megabytes", anon)
	}
	dir := codeDir(t)
	if moved := fileBackCode(dir); moved != anon {
		t.Fatalf("moved %d bytes, want all %d", moved, anon)
	}
	for i := 0; i < 3; i++ {
		if got := redactEvent(t, s); got != want {
			t.Fatalf("after the move: %q, want %q", got, want)
		}
	}
	var size, rss int64
	for _, m := range smaps(t) {
		switch {
		case m.perms == "r-xp" && m.name == "":
			t.Errorf("an anonymous executable mapping of %d bytes is left", m.size)
		case m.perms == "r-xp" && codeFileIn(m, dir):
			size += m.size
			rss += m.rss
		}
	}
	if size != anon {
		t.Errorf("%d bytes of file-backed code, want %d", size, anon)
	}
	if rss > size/2 {
		t.Errorf("%d of %d bytes of the code resident after three batches, want the few pages that ran", rss, size)
	}
}

func TestFileBackCodeLeavesTmpfs(t *testing.T) {
	var st unix.Statfs_t
	if unix.Statfs("/dev/shm", &st) != nil || st.Type != unix.TMPFS_MAGIC {
		t.Skip("/dev/shm is not a tmpfs here")
	}
	if moved := fileBackCode("/dev/shm"); moved != 0 {
		t.Errorf("moved %d bytes of code onto a tmpfs", moved)
	}
}

// After trimStartup the executable's pages that start-up read are no
// longer resident.
func TestTrimStartupDropsExecutablePages(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	resident := func() int64 {
		var n int64
		for _, m := range smaps(t) {
			if m.name == exe && !strings.Contains(m.perms, "w") {
				n += m.rss
			}
		}
		return n
	}
	before := resident()
	trimStartup()
	after := resident()
	t.Logf("executable resident: %d KiB before, %d KiB after", before>>10, after>>10)
	if after >= before/2 {
		t.Errorf("executable resident: %d bytes after trimStartup, %d before; want under half", after, before)
	}
}

func TestApplyMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(math.MaxInt64)
	os.Unsetenv("GOMEMLIMIT")
	log := slog.New(slog.DiscardHandler)
	applyMemoryLimit(40<<20, log)
	if got := debug.SetMemoryLimit(-1); got != 40<<20 {
		t.Errorf("limit %d, want %d", got, 40<<20)
	}
	applyMemoryLimit(0, log)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("limit %d after memory_limit was removed, want none", got)
	}
	t.Setenv("GOMEMLIMIT", "100MiB")
	applyMemoryLimit(40<<20, log)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("limit %d with GOMEMLIMIT in the environment, want the environment's (here none set in the runtime)", got)
	}
}

// Code that runs while it is moved (a stage's tick, a gadget module) keeps
// running correctly, and the mapping that replaces it is advised
// MADV_RANDOM: with the default advice one fault reads ahead around it
// (read_ahead_kb, megabytes on some disks) and those pages stay mapped.
// (The window in which the old code faulted with the default advice, one
// fault between the move and the advice, did not come on demand here, so
// the bound below is a loose one: such a fault resides most of the file.)
func TestFileBackCodeWhileRunning(t *testing.T) {
	if inFreshProcess(t) {
		return
	}
	module, _ := stages.Builtin("redact")
	s, err := wasmstages.New(context.Background(), wasmstages.Config{Name: "redact", ModuleBytes: module, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	dir := codeDir(t)
	const want = "mysql --password=****"
	stop, done := make(chan struct{}), make(chan string)
	go func() {
		var bad string
		defer func() { done <- bad }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if got := redactEvent(t, s); got != want {
				bad = got
				return
			}
		}
	}()
	moved := fileBackCode(dir)
	close(stop)
	if bad := <-done; bad != "" {
		t.Fatalf("during the move: %q, want %q", bad, want)
	}
	if moved == 0 {
		t.Fatal("nothing moved")
	}
	var size, rss int64
	for _, m := range smaps(t) {
		if m.perms == "r-xp" && codeFileIn(m, dir) {
			size += m.size
			rss += m.rss
			if !m.randomRead {
				t.Errorf("the code's mapping at %s is not advised MADV_RANDOM", m.addr)
			}
		}
	}
	if rss > size/2 {
		t.Errorf("%d of %d bytes of the code resident after a move under calls, want the few pages that ran", rss, size)
	}
}

// TestSetMaxProcs: agent { max_procs } sets GOMAXPROCS, a reload to 0
// gives the runtime its default back, and GOMAXPROCS in the environment
// wins over both.
func TestSetMaxProcs(t *testing.T) {
	def := runtime.GOMAXPROCS(0)
	defer runtime.SetDefaultGOMAXPROCS()
	t.Setenv("GOMAXPROCS", "") // restored after the test
	os.Unsetenv("GOMAXPROCS")
	SetMaxProcs(1)
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("GOMAXPROCS %d after max_procs = 1, want 1", got)
	}
	SetMaxProcs(3)
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("GOMAXPROCS %d after max_procs = 3, want 3", got)
	}
	SetMaxProcs(0)
	if got := runtime.GOMAXPROCS(0); got != def {
		t.Fatalf("GOMAXPROCS %d after max_procs was removed, want the default %d", got, def)
	}
	t.Setenv("GOMAXPROCS", strconv.Itoa(def))
	SetMaxProcs(1)
	if got := runtime.GOMAXPROCS(0); got != def {
		t.Fatalf("GOMAXPROCS %d after max_procs = 1 with GOMAXPROCS=%d in the environment, want the environment's", got, def)
	}
}
