package jail_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"

	"github.com/sluice-dev/sluice/internal/jail"
)

// layout is a grant root beside a directory it must not reach:
//
//	outside/secret   "SECRET"       outside/victim "VICTIM"
//	grant/in         "INSIDE"       grant/sub/     (a directory)
//	grant/rel    -> ../outside/secret
//	grant/abs    -> <absolute path of outside/secret>
//	grant/up     -> ..
//	grant/updir  -> ../outside
//	grant/chain  -> sub/../../outside/secret
//	grant/loop   -> loop
//	grant/okrel  -> sub/../in
//	grant/okdir  -> sub
type layout struct{ top, grant, outside string }

func newLayout(t *testing.T) layout {
	t.Helper()
	top := t.TempDir()
	l := layout{top: top, grant: filepath.Join(top, "grant"), outside: filepath.Join(top, "outside")}
	for _, d := range []string{l.grant, l.outside, filepath.Join(l.grant, "sub")} {
		must(t, os.Mkdir(d, 0o755))
	}
	must(t, os.WriteFile(filepath.Join(l.outside, "secret"), []byte("SECRET"), 0o600))
	must(t, os.WriteFile(filepath.Join(l.outside, "victim"), []byte("VICTIM"), 0o600))
	must(t, os.WriteFile(filepath.Join(l.grant, "in"), []byte("INSIDE"), 0o644))
	for name, target := range map[string]string{
		"rel": "../outside/secret", "abs": filepath.Join(l.outside, "secret"), "up": "..",
		"updir": "../outside", "chain": "sub/../../outside/secret", "loop": "loop",
		"okrel": "sub/../in", "okdir": "sub",
	} {
		must(t, os.Symlink(target, filepath.Join(l.grant, name)))
	}
	return l
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// outsideUnchanged fails the test when anything outside the grant changed.
func (l layout) outsideUnchanged(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(l.outside)
	must(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"secret", "victim"}) {
		t.Errorf("outside holds %q; want only secret and victim", names)
	}
	for name, want := range map[string]string{"secret": "SECRET", "victim": "VICTIM"} {
		got, err := os.ReadFile(filepath.Join(l.outside, name))
		if err != nil || string(got) != want {
			t.Errorf("outside/%s = %q, %v; want %q", name, got, err, want)
		}
		st, err := os.Stat(filepath.Join(l.outside, name))
		if err == nil && st.Mode().Perm() != 0o600 {
			t.Errorf("outside/%s mode = %v; want 0600", name, st.Mode().Perm())
		}
	}
	if entries, _ := os.ReadDir(l.top); len(entries) != 2 {
		t.Errorf("the grant's parent holds %d entries; want grant and outside", len(entries))
	}
}

func readAll(t *testing.T, f experimentalsys.File) string {
	t.Helper()
	buf := make([]byte, 64)
	n, e := f.Read(buf)
	if e != 0 {
		t.Fatalf("read: %v", e)
	}
	return string(buf[:n])
}

// forEachResolver runs test against an FS of each resolver.
func forEachResolver(t *testing.T, test func(t *testing.T, l layout, root *jail.FS)) {
	for name, open := range jail.Resolvers {
		t.Run(name, func(t *testing.T) {
			l := newLayout(t)
			root, err := open(l.grant)
			must(t, err)
			t.Cleanup(func() { root.Close() })
			test(t, l, root)
			l.outsideUnchanged(t)
		})
	}
}

func TestEscapesRefused(t *testing.T) {
	const (
		rd    = experimentalsys.O_RDONLY
		wrTr  = experimentalsys.O_WRONLY | experimentalsys.O_TRUNC
		creat = experimentalsys.O_RDWR | experimentalsys.O_CREAT
	)
	forEachResolver(t, func(t *testing.T, l layout, root *jail.FS) {
		for _, c := range []struct {
			name string
			op   func() experimentalsys.Errno
		}{
			{"read through a relative link", func() experimentalsys.Errno { return openErr(root, "rel", rd) }},
			{"read through an absolute link", func() experimentalsys.Errno { return openErr(root, "abs", rd) }},
			{"read through a link to ..", func() experimentalsys.Errno { return openErr(root, "up/outside/secret", rd) }},
			{"read through a directory link", func() experimentalsys.Errno { return openErr(root, "updir/secret", rd) }},
			{"read through a link whose .. climbs out", func() experimentalsys.Errno { return openErr(root, "chain", rd) }},
			{"read an absolute path", func() experimentalsys.Errno { return openErr(root, "/"+l.outside+"/secret", rd) }},
			{"read ../", func() experimentalsys.Errno { return openErr(root, "../outside/secret", rd) }},
			{"truncate through a link", func() experimentalsys.Errno { return openErr(root, "updir/victim", wrTr) }},
			{"create through a link", func() experimentalsys.Errno { return openErr(root, "updir/created", creat) }},
			{"stat through a link", func() experimentalsys.Errno { _, e := root.Stat("rel"); return e }},
			{"lstat through a directory link", func() experimentalsys.Errno { _, e := root.Lstat("updir/secret"); return e }},
			{"mkdir through a link", func() experimentalsys.Errno { return root.Mkdir("updir/newdir", 0o755) }},
			{"rename a file out", func() experimentalsys.Errno { return root.Rename("in", "updir/moved") }},
			{"rename a file in", func() experimentalsys.Errno { return root.Rename("updir/victim", "stolen") }},
			{"unlink through a link", func() experimentalsys.Errno { return root.Unlink("updir/victim") }},
			{"rmdir through a link", func() experimentalsys.Errno { return root.Rmdir("up/outside") }},
			{"hard-link a file from outside", func() experimentalsys.Errno { return root.Link("updir/secret", "hard") }},
			{"hard-link a file out", func() experimentalsys.Errno { return root.Link("in", "updir/hard") }},
			{"create a relative link out", func() experimentalsys.Errno { return root.Symlink("../outside/secret", "planted") }},
			{"create a link to ..", func() experimentalsys.Errno { return root.Symlink("..", "planted") }},
			{"create a deeper link out", func() experimentalsys.Errno { return root.Symlink("../../outside", "sub/planted") }},
			{"create an absolute link", func() experimentalsys.Errno { return root.Symlink("/etc/passwd", "planted") }},
			{"create a link through a link", func() experimentalsys.Errno { return root.Symlink("secret", "updir/planted") }},
			{"chmod through a link", func() experimentalsys.Errno { return root.Chmod("rel", 0o666) }},
			{"utimens through a link", func() experimentalsys.Errno { return root.Utimens("updir/victim", 0, 0) }},
			{"readlink through a link", func() experimentalsys.Errno { _, e := root.Readlink("up/grant/rel"); return e }},
		} {
			t.Run(c.name, func(t *testing.T) {
				if e := c.op(); e == 0 {
					t.Errorf("succeeded; want it refused")
				}
			})
		}
		if _, err := os.Lstat(filepath.Join(l.grant, "planted")); err == nil {
			t.Error("a link leading out was created")
		}
		if _, err := os.Lstat(filepath.Join(l.grant, "stolen")); err == nil {
			t.Error("a file was renamed in from outside")
		}
	})
}

func openErr(root *jail.FS, p string, flag experimentalsys.Oflag) experimentalsys.Errno {
	f, e := root.OpenFile(p, flag, 0o644)
	if e == 0 {
		f.Close()
	}
	return e
}

func TestEscapeErrors(t *testing.T) {
	forEachResolver(t, func(t *testing.T, l layout, root *jail.FS) {
		// A path that would leave the root is EPERM, as wazero answers for
		// a path with too many "..".
		for _, p := range []string{"rel", "abs", "up/outside/secret", "updir/secret", "chain"} {
			if e := openErr(root, p, experimentalsys.O_RDONLY); e != experimentalsys.EPERM {
				t.Errorf("open %s: %v; want EPERM", p, e)
			}
		}
		if e := openErr(root, "loop", experimentalsys.O_RDONLY); e != experimentalsys.ELOOP {
			t.Errorf("open loop: %v; want ELOOP", e)
		}
		if e := openErr(root, "missing", experimentalsys.O_RDONLY); e != experimentalsys.ENOENT {
			t.Errorf("open missing: %v; want ENOENT", e)
		}
	})
}

func TestInsideWorks(t *testing.T) {
	forEachResolver(t, func(t *testing.T, l layout, root *jail.FS) {
		// Links that stay inside are followed, ".." inside too.
		for _, p := range []string{"in", "okrel", "okdir/../in", "sub/../in", "./in", "/in"} {
			f, e := root.OpenFile(p, experimentalsys.O_RDONLY, 0)
			if e != 0 {
				t.Errorf("open %s: %v", p, e)
				continue
			}
			if got := readAll(t, f); got != "INSIDE" {
				t.Errorf("read %s = %q; want INSIDE", p, got)
			}
			f.Close()
		}
		// Write, create, rename, link, symlink and unlink inside.
		f, e := root.OpenFile("okdir/new", experimentalsys.O_RDWR|experimentalsys.O_CREAT|experimentalsys.O_EXCL, 0o600)
		if e != 0 {
			t.Fatalf("create okdir/new: %v", e)
		}
		if _, e := f.Write([]byte("written")); e != 0 {
			t.Fatalf("write: %v", e)
		}
		f.Close()
		if got, _ := os.ReadFile(filepath.Join(l.grant, "sub", "new")); string(got) != "written" {
			t.Errorf("sub/new = %q; want written", got)
		}
		for _, step := range []struct {
			name string
			e    experimentalsys.Errno
		}{
			{"mkdir", root.Mkdir("sub/d", 0o755)},
			{"rename", root.Rename("sub/new", "sub/d/renamed")},
			{"link", root.Link("sub/d/renamed", "hard")},
			{"symlink", root.Symlink("sub/d/renamed", "soft")},
			{"symlink up inside", root.Symlink("../in", "sub/soft-in")},
			{"utimens", root.Utimens("soft", 0, 0)},
			{"chmod", root.Chmod("hard", 0o640)},
		} {
			if step.e != 0 {
				t.Errorf("%s: %v", step.name, step.e)
			}
		}
		for _, p := range []string{"hard", "soft"} {
			f, e := root.OpenFile(p, experimentalsys.O_RDONLY, 0)
			if e != 0 {
				t.Fatalf("open %s: %v", p, e)
			}
			if got := readAll(t, f); got != "written" {
				t.Errorf("read %s = %q", p, got)
			}
			f.Close()
		}
		if target, e := root.Readlink("rel"); e != 0 || target != "../outside/secret" {
			t.Errorf("readlink rel = %q, %v", target, e)
		}
		if st, e := root.Lstat("rel"); e != 0 || st.Mode.Type() != fs.ModeSymlink {
			t.Errorf("lstat rel = %v, %v; want a link", st.Mode, e)
		}
		if st, e := root.Stat("okdir"); e != 0 || !st.Mode.IsDir() {
			t.Errorf("stat okdir = %v, %v; want a directory", st.Mode, e)
		}
		// Unlinking a link that leads out removes the link, not its target.
		if e := root.Unlink("rel"); e != 0 {
			t.Errorf("unlink rel: %v", e)
		}
		// A directory lists its entries, and again after a rewind.
		d, e := root.OpenFile("sub", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0)
		if e != 0 {
			t.Fatalf("open sub: %v", e)
		}
		defer d.Close()
		for range 2 {
			ents, e := d.Readdir(-1)
			if e != 0 {
				t.Fatalf("readdir: %v", e)
			}
			var names []string
			for _, ent := range ents {
				names = append(names, ent.Name)
			}
			slices.Sort(names)
			if !slices.Equal(names, []string{"d", "soft-in"}) {
				t.Errorf("sub lists %q", names)
			}
			if _, e := d.Seek(0, 0); e != 0 {
				t.Fatalf("rewind: %v", e)
			}
		}
	})
}

func TestSpecialFilesRefused(t *testing.T) {
	forEachResolver(t, func(t *testing.T, l layout, root *jail.FS) {
		// A FIFO would block the opening guest in a system call no
		// deadline interrupts.
		fifo := filepath.Join(l.grant, "fifo")
		must(t, mkfifo(fifo))
		if e := openErr(root, "fifo", experimentalsys.O_RDONLY); e != experimentalsys.EACCES {
			t.Errorf("open fifo: %v; want EACCES", e)
		}
	})
}

func TestMagicLinksRefused(t *testing.T) {
	// /proc/self/root and /proc/self/cwd are magic links: the kernel jumps
	// to their target without reading a path. A grant that contains one
	// must not become a way out.
	for name, open := range jail.Resolvers {
		t.Run(name, func(t *testing.T) {
			root, err := open("/proc/self")
			must(t, err)
			defer root.Close()
			for _, p := range []string{"root/etc/hostname", "cwd", "exe", "fd/0"} {
				if e := openErr(root, p, experimentalsys.O_RDONLY); e == 0 {
					t.Errorf("open %s in /proc/self succeeded", p)
				}
			}
		})
	}
}

// TestSwappedLinkRace swaps a name between a file inside and a link that
// leads out while the FS opens it in a loop: a check-then-use resolution
// would read the secret now and then.
func TestSwappedLinkRace(t *testing.T) {
	forEachResolver(t, func(t *testing.T, l layout, root *jail.FS) {
		swap := newSwapper(t, l.grant, "race", func(p string) error {
			return os.WriteFile(p, []byte("INSIDE"), 0o644)
		}, "../outside/secret")
		swapDir := newSwapper(t, l.grant, "racedir", func(p string) error {
			if err := os.Mkdir(p, 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(p, "secret"), []byte("INSIDE"), 0o644)
		}, "../outside")
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, s := range []*swapper{swap, swapDir} {
			wg.Go(func() { s.run(stop) })
		}
		defer func() { close(stop); wg.Wait() }()

		counts := map[string]int{}
		// Loop until both names were seen in both states: that proves the
		// swaps interleaved with the opens.
		for i := 0; i < 2_000_000 && (counts["race INSIDE"] == 0 || counts["race refused"] == 0 ||
			counts["racedir/secret INSIDE"] == 0 || counts["racedir/secret refused"] == 0); i++ {
			for _, p := range []string{"race", "racedir/secret"} {
				f, e := root.OpenFile(p, experimentalsys.O_RDONLY, 0)
				switch {
				case e == experimentalsys.EPERM:
					counts[p+" refused"]++
				case e != 0:
					counts[p+" other"]++ // ENOENT mid-swap
				default:
					buf := make([]byte, 16)
					n, _ := f.Read(buf)
					f.Close()
					counts[p+" "+string(buf[:n])]++
				}
			}
		}
		t.Logf("outcomes: %v", counts)
		for k, n := range counts {
			if n > 0 && (k == "race SECRET" || k == "racedir/secret SECRET") {
				t.Errorf("%s: read the secret %d times", k, n)
			}
		}
		if counts["race INSIDE"] == 0 || counts["racedir/secret INSIDE"] == 0 {
			t.Errorf("the swaps never let an open through: %v", counts)
		}
	})
}

// swapper replaces name in dir, atomically by rename, with what make
// creates and with a link to target, in turn.
type swapper struct {
	t                 *testing.T
	dir, name, target string
	make              func(string) error
	real, link, spare string
}

func newSwapper(t *testing.T, dir, name string, make func(string) error, target string) *swapper {
	s := &swapper{t: t, dir: dir, name: name, target: target, make: make}
	must(t, make(filepath.Join(dir, name)))
	return s
}

func (s *swapper) run(stop <-chan struct{}) {
	p := filepath.Join(s.dir, s.name)
	tmpReal, tmpLink := filepath.Join(s.dir, "."+s.name+".real"), filepath.Join(s.dir, "."+s.name+".link")
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		var err error
		if i%2 == 0 {
			os.RemoveAll(tmpLink)
			err = os.Symlink(s.target, tmpLink)
			if err == nil {
				err = exchange(tmpLink, p)
			}
		} else {
			os.RemoveAll(tmpReal)
			err = s.make(tmpReal)
			if err == nil {
				err = exchange(tmpReal, p)
			}
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.t.Errorf("swap %s: %v", s.name, err)
			return
		}
	}
}
