package jail

import (
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"
)

// FS is a grant root: an experimental sys.FS whose paths never leave the
// directory it was opened on. Wrap it in wazero's sysfs.ReadFS for a
// read-only grant.
type FS struct {
	experimentalsys.UnimplementedFS

	dir  string
	open opener

	mu     sync.RWMutex // guards root against Close
	root   int          // O_PATH descriptor of dir; -1 when closed
	closed bool
}

var _ experimentalsys.FS = (*FS)(nil)

// Open opens dir (following links in dir itself: the grant is what the
// operator named) as a grant root.
func Open(dir string) (*FS, error) {
	return openWith(dir, defaultOpener())
}

func openWith(dir string, open opener) (*FS, error) {
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open grant root %s: %w", dir, err)
	}
	return &FS{dir: dir, open: open, root: root}, nil
}

// String is the host directory, as wazero's DirFS reports it.
func (f *FS) String() string { return f.dir }

// Close releases the root. Operations after Close fail with EBADF; files
// already open stay usable until closed.
func (f *FS) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	err := unix.Close(f.root)
	f.root = -1
	return err
}

// with runs op with the root descriptor held open.
func (f *FS) with(op func(root int) experimentalsys.Errno) experimentalsys.Errno {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return experimentalsys.EBADF
	}
	return op(f.root)
}

// clean turns a guest path (relative to the root, perhaps with a leading
// "/") into the name resolution gets. A trailing "/" stays: it means "a
// directory".
func clean(p string) string {
	if p = strings.TrimLeft(p, "/"); p == "" {
		return "."
	}
	return p
}

// split returns the parent of the last component of p and the component
// (with p's trailing "/", if any); "." and "" have no last component.
func split(p string) (dir, base string, ok bool) {
	p = strings.TrimLeft(p, "/")
	trimmed := strings.TrimRight(p, "/")
	if trimmed == "" || trimmed == "." {
		return "", "", false
	}
	dir, base = path.Split(trimmed)
	if base == ".." || base == "." {
		return "", "", false
	}
	if dir == "" {
		dir = "."
	}
	return dir, base + p[len(trimmed):], true
}

// errno turns a system error into the guest's errno. EXDEV is what both
// resolvers answer for a path that would leave the root: the guest sees
// EPERM (WASI's "not capable" has no errno of its own in wazero).
func errno(err error) experimentalsys.Errno {
	if err == nil {
		return 0
	}
	if err == unix.EXDEV {
		return experimentalsys.EPERM
	}
	return experimentalsys.UnwrapOSError(err)
}

// openDir resolves the directory dir beneath root as an O_PATH descriptor.
func (f *FS) openDir(root int, dir string) (int, experimentalsys.Errno) {
	fd, err := f.open(root, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		if err == unix.ENOTDIR {
			return -1, experimentalsys.ENOENT
		}
		return -1, errno(err)
	}
	return fd, 0
}

// atParent runs op on the parent directory of p's last component.
func (f *FS) atParent(p string, op func(dirfd int, base string) error) experimentalsys.Errno {
	dir, base, ok := split(p)
	if !ok {
		// The root itself (or a path ending in ".."): nothing to act on
		// by name.
		return experimentalsys.EPERM
	}
	return f.with(func(root int) experimentalsys.Errno {
		dfd, e := f.openDir(root, dir)
		if e != 0 {
			return e
		}
		defer unix.Close(dfd)
		return errno(op(dfd, base))
	})
}

// OpenFile implements sys.FS.
func (f *FS) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	var file experimentalsys.File
	e := f.with(func(root int) experimentalsys.Errno {
		// O_NONBLOCK until the type is known: opening a FIFO must not
		// block. It is cleared again below unless the guest asked for it.
		flags := toUnixFlags(flag) | unix.O_NOCTTY | unix.O_NONBLOCK
		fd, err := f.open(root, clean(p), flags, uint32(perm.Perm()))
		if err != nil {
			return errno(err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return errno(err)
		}
		if t := st.Mode & unix.S_IFMT; t != unix.S_IFREG && t != unix.S_IFDIR {
			unix.Close(fd)
			return experimentalsys.EACCES
		}
		if flag&experimentalsys.O_NONBLOCK == 0 {
			if err := unix.SetNonblock(fd, false); err != nil {
				unix.Close(fd)
				return errno(err)
			}
		}
		file = newFile(fd, flag, &st)
		return 0
	})
	return file, e
}

// Lstat implements sys.FS: the last component is not followed.
func (f *FS) Lstat(p string) (sys.Stat_t, experimentalsys.Errno) {
	if strings.HasSuffix(p, "/") {
		return f.Stat(p) // "link/" names the directory the link leads to
	}
	var st unix.Stat_t
	if _, _, ok := split(p); !ok {
		return f.Stat(p)
	}
	e := f.atParent(p, func(dirfd int, base string) error {
		return unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	})
	if e != 0 {
		return sys.Stat_t{}, e
	}
	return toStat(&st), 0
}

// Stat implements sys.FS: links are followed, beneath the root.
func (f *FS) Stat(p string) (sys.Stat_t, experimentalsys.Errno) {
	var st unix.Stat_t
	e := f.with(func(root int) experimentalsys.Errno {
		fd, err := f.open(root, clean(p), unix.O_PATH, 0)
		if err != nil {
			return errno(err)
		}
		defer unix.Close(fd)
		return errno(unix.Fstat(fd, &st))
	})
	if e != 0 {
		return sys.Stat_t{}, e
	}
	return toStat(&st), 0
}

// Mkdir implements sys.FS.
func (f *FS) Mkdir(p string, perm fs.FileMode) experimentalsys.Errno {
	e := f.atParent(p, func(dirfd int, base string) error {
		return unix.Mkdirat(dirfd, strings.TrimRight(base, "/"), uint32(perm.Perm()))
	})
	if e == experimentalsys.ENOTDIR {
		e = experimentalsys.ENOENT // as wazero's DirFS answers
	}
	return e
}

// Chmod implements sys.FS. WASI preview 1 has no chmod; the change is made
// through the resolved descriptor, so it cannot reach outside either.
func (f *FS) Chmod(p string, perm fs.FileMode) experimentalsys.Errno {
	return f.onResolved(p, func(procPath string) error {
		return unix.Fchmodat(unix.AT_FDCWD, procPath, uint32(perm.Perm()), 0)
	})
}

// Utimens implements sys.FS; links are followed, beneath the root.
func (f *FS) Utimens(p string, atim, mtim int64) experimentalsys.Errno {
	return f.onResolved(p, func(procPath string) error {
		return unix.UtimesNanoAt(unix.AT_FDCWD, procPath, timespecs(atim, mtim), 0)
	})
}

// onResolved resolves p beneath the root to an O_PATH descriptor and runs
// op on the descriptor's /proc/self/fd path: the kernel's own name for the
// file already found, so the operation acts on exactly it (the usual way to
// chmod or utimes an O_PATH descriptor).
func (f *FS) onResolved(p string, op func(procPath string) error) experimentalsys.Errno {
	return f.with(func(root int) experimentalsys.Errno {
		fd, err := f.open(root, clean(p), unix.O_PATH, 0)
		if err != nil {
			return errno(err)
		}
		defer unix.Close(fd)
		return errno(op("/proc/self/fd/" + strconv.Itoa(fd)))
	})
}

// Rename implements sys.FS. Both names are resolved beneath the root.
func (f *FS) Rename(from, to string) experimentalsys.Errno {
	return f.atParent(from, func(fromDir int, fromBase string) error {
		return f.atParentErr(to, func(toDir int, toBase string) error {
			return unix.Renameat(fromDir, fromBase, toDir, toBase)
		})
	})
}

// atParentErr is atParent for use inside another atParent's op (the root
// is already held).
func (f *FS) atParentErr(p string, op func(dirfd int, base string) error) error {
	dir, base, ok := split(p)
	if !ok {
		return unix.EPERM
	}
	dfd, err := f.open(f.root, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		if err == unix.ENOTDIR {
			return unix.ENOENT
		}
		return err
	}
	defer unix.Close(dfd)
	return op(dfd, base)
}

// Rmdir implements sys.FS.
func (f *FS) Rmdir(p string) experimentalsys.Errno {
	return f.atParent(p, func(dirfd int, base string) error {
		return unix.Unlinkat(dirfd, strings.TrimRight(base, "/"), unix.AT_REMOVEDIR)
	})
}

// Unlink implements sys.FS. A link is removed, never its target.
func (f *FS) Unlink(p string) experimentalsys.Errno {
	return f.atParent(p, func(dirfd int, base string) error {
		err := unix.Unlinkat(dirfd, base, 0)
		if err == unix.EISDIR || err == unix.EPERM {
			// Linux answers EISDIR for a directory; keep wazero's answer.
			var st unix.Stat_t
			if unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
				return unix.EISDIR
			}
		}
		return err
	})
}

// Link implements sys.FS: both names are resolved beneath the root and a
// link in oldPath's last component is linked itself (no AT_SYMLINK_FOLLOW),
// so no file from outside the root can be given a name inside it.
func (f *FS) Link(oldPath, newPath string) experimentalsys.Errno {
	return f.atParent(oldPath, func(oldDir int, oldBase string) error {
		return f.atParentErr(newPath, func(newDir int, newBase string) error {
			return unix.Linkat(oldDir, oldBase, newDir, newBase, 0)
		})
	})
}

// Symlink implements sys.FS. It refuses a target that is absolute or
// leads out of the root from the link's directory.
func (f *FS) Symlink(target, link string) experimentalsys.Errno {
	if !targetStaysInside(target, link) {
		return experimentalsys.EPERM
	}
	return f.atParent(link, func(dirfd int, base string) error {
		return unix.Symlinkat(target, dirfd, strings.TrimRight(base, "/"))
	})
}

// targetStaysInside reports whether a link named link (relative to the
// root) with the given target stays beneath the root when read lexically.
// Links planted by others are not trusted on this basis: resolution keeps
// them inside regardless.
func targetStaysInside(target, link string) bool {
	if target == "" || strings.HasPrefix(target, "/") || strings.ContainsRune(target, 0) {
		return false
	}
	linkDir := path.Dir(strings.TrimRight(strings.TrimLeft(link, "/"), "/"))
	joined := path.Join(linkDir, target)
	return joined != ".." && !strings.HasPrefix(joined, "../")
}

// Readlink implements sys.FS.
func (f *FS) Readlink(p string) (string, experimentalsys.Errno) {
	var target string
	e := f.atParent(p, func(dirfd int, base string) error {
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(dirfd, strings.TrimRight(base, "/"), buf)
		if err != nil {
			return err
		}
		target = string(buf[:n])
		return nil
	})
	return target, e
}

// toUnixFlags maps wazero's open flags to open(2) flags.
func toUnixFlags(flag experimentalsys.Oflag) int {
	var out int
	switch flag & (experimentalsys.O_RDONLY | experimentalsys.O_RDWR | experimentalsys.O_WRONLY) {
	case experimentalsys.O_RDWR:
		out = unix.O_RDWR
	case experimentalsys.O_WRONLY:
		out = unix.O_WRONLY
	default:
		out = unix.O_RDONLY
	}
	for _, m := range []struct {
		from experimentalsys.Oflag
		to   int
	}{
		{experimentalsys.O_APPEND, unix.O_APPEND},
		{experimentalsys.O_CREAT, unix.O_CREAT},
		{experimentalsys.O_DIRECTORY, unix.O_DIRECTORY},
		{experimentalsys.O_DSYNC, unix.O_DSYNC},
		{experimentalsys.O_EXCL, unix.O_EXCL},
		{experimentalsys.O_NOFOLLOW, unix.O_NOFOLLOW},
		{experimentalsys.O_NONBLOCK, unix.O_NONBLOCK},
		{experimentalsys.O_RSYNC, unix.O_RSYNC},
		{experimentalsys.O_SYNC, unix.O_SYNC},
		{experimentalsys.O_TRUNC, unix.O_TRUNC},
	} {
		if flag&m.from != 0 {
			out |= m.to
		}
	}
	return out
}

// toStat converts the kernel's stat to wazero's.
func toStat(st *unix.Stat_t) sys.Stat_t {
	mode := fs.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	if st.Mode&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if st.Mode&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if st.Mode&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return sys.Stat_t{
		Dev: st.Dev, Ino: st.Ino, Mode: mode, Nlink: uint64(st.Nlink), Size: st.Size,
		Atim: st.Atim.Nano(), Mtim: st.Mtim.Nano(), Ctim: st.Ctim.Nano(),
	}
}

// timespecs turns wazero's times (UTIME_OMIT included) into utimensat's.
func timespecs(atim, mtim int64) []unix.Timespec {
	ts := func(n int64) unix.Timespec {
		if n == experimentalsys.UTIME_OMIT {
			return unix.Timespec{Nsec: unix.UTIME_OMIT}
		}
		return unix.NsecToTimespec(n)
	}
	return []unix.Timespec{ts(atim), ts(mtim)}
}
