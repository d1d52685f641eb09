package security

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/wasmstages"
)

// escapeGuest is the hostile guest (wasmstages/testdata/escape.c): it runs
// the file operations its params list and logs how each went. Absolute,
// because a test changes directory.
var escapeGuest = func() string {
	p, err := filepath.Abs("../wasmstages/testdata/escape.wasm")
	if err != nil {
		panic(err)
	}
	return p
}()

// sandbox is a host directory tree for one attack:
//
//	top/outside/secret  "SECRET" (0600)   top/outside/victim "VICTIM"
//	top/rw/in           "INSIDE"          granted writable as /rw
//	top/ro/in           "INSIDE"          granted read-only as /ro
type sandbox struct{ top, outside, rw, ro string }

func newSandbox(t *testing.T) sandbox {
	t.Helper()
	top := t.TempDir()
	s := sandbox{top: top, outside: filepath.Join(top, "outside"), rw: filepath.Join(top, "rw"), ro: filepath.Join(top, "ro")}
	for _, d := range []string{s.outside, s.rw, s.ro} {
		must(t, os.Mkdir(d, 0o755))
	}
	must(t, os.WriteFile(filepath.Join(s.outside, "secret"), []byte("SECRET"), 0o600))
	must(t, os.WriteFile(filepath.Join(s.outside, "victim"), []byte("VICTIM"), 0o600))
	must(t, os.WriteFile(filepath.Join(s.rw, "in"), []byte("INSIDE"), 0o644))
	must(t, os.WriteFile(filepath.Join(s.ro, "in"), []byte("INSIDE"), 0o644))
	return s
}

func (s sandbox) grants() wasmstages.Grants {
	return wasmstages.Grants{Dirs: []wasmstages.Dir{
		{Host: s.rw, Guest: "/rw", Writable: true},
		{Host: s.ro, Guest: "/ro"},
	}}
}

// plant makes a link in the tree, as someone with write access to a grant
// (another process, an earlier run of the guest) could have left it.
func (s sandbox) plant(t *testing.T, link, target string) {
	t.Helper()
	must(t, os.Symlink(strings.ReplaceAll(target, "$TOP", s.top), filepath.Join(s.top, link)))
}

// outsideUnchanged fails the test when the guest changed anything outside
// its grants.
func (s sandbox) outsideUnchanged(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(s.outside)
	must(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"secret", "victim"}) {
		t.Errorf("outside/ holds %q after the attack; want secret and victim only", names)
	}
	for name, want := range map[string]string{"secret": "SECRET", "victim": "VICTIM"} {
		if got, err := os.ReadFile(filepath.Join(s.outside, name)); err != nil || string(got) != want {
			t.Errorf("outside/%s = %q, %v after the attack; want %q", name, got, err, want)
		}
	}
}

// outcome is what the guest logged for one op.
type outcome struct {
	ok     bool
	detail string
}

var outcomeRE = regexp.MustCompile(`(?s)^escape (.*?) => (ok|error) ?(.*)$`)

// runGuest starts the escape guest with grants and ops and returns each
// op's outcome.
func runGuest(t *testing.T, grants wasmstages.Grants, ops ...string) map[string]outcome {
	t.Helper()
	rec := &recorder{}
	params := map[string]any{"ops": ops}
	s, err := wasmstages.New(context.Background(), wasmstages.Config{
		Name: "escape", Module: escapeGuest, Grants: grants, Params: params,
		Timeout: 10 * time.Second, Logger: slog.New(rec),
	})
	if err != nil {
		t.Fatalf("start the escape guest: %v", err)
	}
	must(t, s.Close(context.Background()))
	got := map[string]outcome{}
	for _, msg := range rec.messages() {
		if m := outcomeRE.FindStringSubmatch(msg); m != nil {
			got[m[1]] = outcome{ok: m[2] == "ok", detail: m[3]}
		}
	}
	for _, op := range ops {
		if _, ok := got[op]; !ok {
			t.Fatalf("the guest did not report %q; it logged %q", op, rec.messages())
		}
	}
	return got
}

func TestGuestCannotLeaveItsGrants(t *testing.T) {
	for _, c := range []struct {
		name  string
		plant [][2]string // link (relative to top), target ($TOP expands)
		// steps run in order: "deny <op>" must fail, "allow <op>" must
		// work (they show that the guest and its grants work, so that a
		// refusal is no accident).
		steps []string
	}{{
		name: "a relative link it creates in a writable grant",
		steps: []string{"deny symlink ../outside/secret /rw/l", "deny read /rw/l",
			"allow read /rw/in", "allow symlink in /rw/ok", "allow read /rw/ok"},
	}, {
		name: "a link to the grant's parent it creates, then writes through",
		steps: []string{"deny symlink ../.. /rw/top", "deny symlink .. /rw/up",
			"deny write /rw/up/outside/victim PWNED", "deny read /rw/up/outside/secret",
			"allow mkdir /rw/sub", "allow symlink ../in /rw/sub/back", "allow read /rw/sub/back"},
	}, {
		// wazero refuses to create absolute links too; kept as a guard.
		name:  "an absolute link it creates",
		steps: []string{"deny symlink /etc/passwd /rw/abs", "deny read /rw/abs", "allow write /rw/new hello", "allow read /rw/new"},
	}, {
		name:  "a planted relative link in a read-only grant",
		plant: [][2]string{{"ro/rel", "../outside/secret"}},
		steps: []string{"deny read /ro/rel", "deny stat /ro/rel", "allow read /ro/in", "allow readlink /ro/rel"},
	}, {
		name:  "a planted absolute link in a read-only grant",
		plant: [][2]string{{"ro/abs", "$TOP/outside/secret"}},
		steps: []string{"deny read /ro/abs", "allow read /ro/in"},
	}, {
		name:  "a planted link to .. in a read-only grant",
		plant: [][2]string{{"ro/up", ".."}},
		steps: []string{"deny read /ro/up/outside/secret", "deny read /ro/up/rw/in", "allow read /ro/in"},
	}, {
		name:  "writing through a planted link in a writable grant",
		plant: [][2]string{{"rw/w", "../outside/victim"}, {"rw/dangling", "../outside/created"}},
		steps: []string{"deny write /rw/w PWNED", "deny write /rw/dangling PWNED", "allow write /rw/in CHANGED", "allow read /rw/in"},
	}, {
		// Without the jail the hard link lands inside, and reading it
		// needs no link any more.
		name:  "hard-linking a file from outside through a planted link",
		plant: [][2]string{{"rw/up", ".."}},
		steps: []string{"deny link /rw/up/outside/secret /rw/hard", "deny read /rw/hard",
			"allow link /rw/in /rw/hard-in", "allow read /rw/hard-in"},
	}, {
		// link(2) links the symbolic link itself; reading the new name
		// still resolves it beneath the grant.
		name:  "hard-linking a planted link leading out",
		plant: [][2]string{{"rw/rel", "../outside/secret"}},
		steps: []string{"allow link /rw/rel /rw/hard", "deny read /rw/hard"},
	}, {
		name:  "renaming, removing and creating outside through a planted link",
		plant: [][2]string{{"rw/up", ".."}},
		steps: []string{"deny rename /rw/in /rw/up/outside/moved", "deny rename /rw/up/outside/victim /rw/stolen",
			"deny unlink /rw/up/outside/victim", "deny mkdir /rw/up/outside/newdir", "deny stat /rw/up/outside/secret",
			"allow stat /rw/in", "allow unlink /rw/up"},
	}, {
		// /proc/self/root and cwd are magic links: the kernel jumps to
		// their target without reading a path.
		name:  "magic links of a granted /proc directory",
		steps: []string{"deny read /proc/root/etc/hostname", "deny read /proc/cwd/outside/secret", "allow read /proc/comm"},
	}} {
		t.Run(c.name, func(t *testing.T) {
			s := newSandbox(t)
			for _, p := range c.plant {
				s.plant(t, p[0], p[1])
			}
			grants := s.grants()
			if strings.HasPrefix(c.name, "magic") {
				t.Chdir(s.top) // the agent's cwd: outside the grants
				grants.Dirs = append(grants.Dirs, wasmstages.Dir{Host: "/proc/self", Guest: "/proc"})
			}
			ops := make([]string, len(c.steps))
			for i, step := range c.steps {
				_, ops[i], _ = strings.Cut(step, " ")
			}
			got := runGuest(t, grants, ops...)
			for i, step := range c.steps {
				switch o := got[ops[i]]; {
				case strings.HasPrefix(step, "deny ") && o.ok:
					t.Errorf("%q succeeded (%s); want it refused", ops[i], o.detail)
				case strings.HasPrefix(step, "allow ") && !o.ok:
					t.Errorf("%q failed (%s); want it to work inside the grant", ops[i], o.detail)
				}
				if strings.Contains(got[ops[i]].detail, "SECRET") {
					t.Errorf("%q read the secret", ops[i])
				}
			}
			s.outsideUnchanged(t)
			if _, err := os.Lstat(filepath.Join(s.rw, "l")); err == nil {
				t.Error("the guest created a link leading out of its grant")
			}
		})
	}
}

var raceRE = regexp.MustCompile(`secret=(\d+) inside=(\d+) error=(\d+)`)

// TestGuestCannotWinALinkSwapRace swaps a name in a grant between a file
// (or directory) inside and a link leading out, atomically and as fast as
// it can, while the guest reads it in a loop: a resolution that checks a
// path and then uses it would read the secret now and then.
func TestGuestCannotWinALinkSwapRace(t *testing.T) {
	for _, c := range []struct{ name, path, op string }{
		{"file", "ro/race", "race /ro/race 400000"},
		{"directory", "ro/racedir", "race /ro/racedir/secret 400000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSandbox(t)
			real := func(p string) error { return os.WriteFile(p, []byte("INSIDE"), 0o644) }
			target := "../outside/secret"
			if c.name == "directory" {
				real = func(p string) error {
					if err := os.Mkdir(p, 0o755); err != nil {
						return err
					}
					return os.WriteFile(filepath.Join(p, "secret"), []byte("INSIDE"), 0o644)
				}
				target = "../outside"
			}
			p := filepath.Join(s.top, c.path)
			must(t, real(p))
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() { swapLoop(t, p, target, real, stop) })
			got := runGuest(t, s.grants(), c.op)
			close(stop)
			wg.Wait()
			o := got[c.op]
			m := raceRE.FindStringSubmatch(o.detail)
			if !o.ok || m == nil {
				t.Fatalf("race op: %+v", o)
			}
			secret, _ := strconv.Atoi(m[1])
			inside, _ := strconv.Atoi(m[2])
			failed, _ := strconv.Atoi(m[3])
			t.Logf("guest reads: %s", o.detail)
			if secret > 0 {
				t.Errorf("the guest read the secret %d times", secret)
			}
			// Both states were seen: the swaps really raced the reads.
			if inside == 0 || failed == 0 {
				t.Errorf("no interleaving (inside=%d refused=%d): the test proved nothing", inside, failed)
			}
			s.outsideUnchanged(t)
		})
	}
}

// swapLoop exchanges the name p with a freshly made real file (or
// directory) and a link to target, in turn, until stop closes.
func swapLoop(t *testing.T, p, target string, real func(string) error, stop <-chan struct{}) {
	tmpReal, tmpLink := p+".real", p+".link"
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		tmp := tmpLink
		os.RemoveAll(tmp)
		err := os.Symlink(target, tmp)
		if i%2 == 1 {
			tmp = tmpReal
			os.RemoveAll(tmp)
			err = real(tmp)
		}
		if err == nil {
			err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, p, unix.RENAME_EXCHANGE)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("swap %s: %v", p, err)
			return
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// recorder is a slog.Handler that keeps the messages.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func (r *recorder) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}
