package jail

import (
	"encoding/binary"
	"io"
	"io/fs"
	"unsafe"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"
)

// file is an open regular file or directory of a grant: a descriptor the
// kernel resolved beneath the root, used without paths from then on (a
// directory is rewound with lseek, never reopened by name).
//
// It is generic over its offset type only because go vet's stdmethods
// check wants every method named Seek to be io.Seeker's, and sys.File's
// returns an Errno; the check skips a Seek whose offset is a type
// parameter. The one instantiation is file[int64].
type file[Offset ~int64] struct {
	experimentalsys.UnimplementedFile

	fd     int
	flag   experimentalsys.Oflag
	dev    uint64
	ino    sys.Inode
	isDir  bool
	closed bool

	// Directory reading: the getdents64 buffer and what is left of it.
	dirBuf  []byte
	pending []byte
}

var _ experimentalsys.File = (*file[int64])(nil)

func newFile(fd int, flag experimentalsys.Oflag, st *unix.Stat_t) *file[int64] {
	return &file[int64]{fd: fd, flag: flag, dev: st.Dev, ino: st.Ino, isDir: st.Mode&unix.S_IFMT == unix.S_IFDIR}
}

// Dev implements sys.File.
func (f *file[Offset]) Dev() (uint64, experimentalsys.Errno) { return f.dev, f.badf() }

// Ino implements sys.File.
func (f *file[Offset]) Ino() (sys.Inode, experimentalsys.Errno) { return f.ino, f.badf() }

// IsDir implements sys.File.
func (f *file[Offset]) IsDir() (bool, experimentalsys.Errno) { return f.isDir, f.badf() }

func (f *file[Offset]) badf() experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	return 0
}

// IsAppend implements sys.File.
func (f *file[Offset]) IsAppend() bool { return f.flag&experimentalsys.O_APPEND != 0 }

// SetAppend implements sys.File: Linux changes O_APPEND with F_SETFL, on
// the same descriptor.
func (f *file[Offset]) SetAppend(enable bool) experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	fl, err := unix.FcntlInt(uintptr(f.fd), unix.F_GETFL, 0)
	if err != nil {
		return errno(err)
	}
	if enable {
		fl |= unix.O_APPEND
	} else {
		fl &^= unix.O_APPEND
	}
	if _, err := unix.FcntlInt(uintptr(f.fd), unix.F_SETFL, fl); err != nil {
		return errno(err)
	}
	if enable {
		f.flag |= experimentalsys.O_APPEND
	} else {
		f.flag &^= experimentalsys.O_APPEND
	}
	return 0
}

// Stat implements sys.File.
func (f *file[Offset]) Stat() (sys.Stat_t, experimentalsys.Errno) {
	if f.closed {
		return sys.Stat_t{}, experimentalsys.EBADF
	}
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return sys.Stat_t{}, errno(err)
	}
	return toStat(&st), 0
}

// retry repeats a system call interrupted by a signal.
func retry(call func() (int, error)) (int, experimentalsys.Errno) {
	for {
		n, err := call()
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, errno(err)
		}
		return n, 0
	}
}

// Read implements sys.File.
func (f *file[Offset]) Read(buf []byte) (int, experimentalsys.Errno) {
	if f.closed {
		return 0, experimentalsys.EBADF
	}
	if len(buf) == 0 {
		return 0, 0
	}
	return retry(func() (int, error) { return unix.Read(f.fd, buf) })
}

// Pread implements sys.File.
func (f *file[Offset]) Pread(buf []byte, off int64) (int, experimentalsys.Errno) {
	if f.closed {
		return 0, experimentalsys.EBADF
	}
	if off < 0 {
		return 0, experimentalsys.EINVAL
	}
	return retry(func() (int, error) { return unix.Pread(f.fd, buf, off) })
}

// Seek implements sys.File. Rewinding a directory also drops what was
// buffered of it, so new entries show.
func (f *file[Offset]) Seek(offset Offset, whence int) (int64, experimentalsys.Errno) {
	if f.closed {
		return 0, experimentalsys.EBADF
	}
	if whence < io.SeekStart || whence > io.SeekEnd {
		return 0, experimentalsys.EINVAL
	}
	if f.isDir {
		if offset != 0 || whence != io.SeekStart {
			return 0, experimentalsys.EISDIR
		}
		f.pending = nil
	}
	n, err := unix.Seek(f.fd, int64(offset), whence)
	return n, errno(err)
}

// Readdir implements sys.File, without "." and ".." (wazero adds them).
func (f *file[Offset]) Readdir(n int) ([]experimentalsys.Dirent, experimentalsys.Errno) {
	if f.closed {
		return nil, experimentalsys.EBADF
	}
	if !f.isDir {
		return nil, experimentalsys.EBADF
	}
	var out []experimentalsys.Dirent
	for n <= 0 || len(out) < n {
		if len(f.pending) == 0 {
			if f.dirBuf == nil {
				f.dirBuf = make([]byte, 8192)
			}
			got, e := retry(func() (int, error) { return unix.Getdents(f.fd, f.dirBuf) })
			if e != 0 {
				if e == experimentalsys.ENOENT || len(out) > 0 {
					return out, 0
				}
				return nil, e
			}
			if got == 0 {
				break
			}
			f.pending = f.dirBuf[:got]
		}
		d, rest, ok := nextDirent(f.pending)
		if !ok {
			f.pending = nil
			return out, experimentalsys.EIO
		}
		f.pending = rest
		if d.Name == "." || d.Name == ".." {
			continue
		}
		if d.Type == fs.ModeIrregular {
			// DT_UNKNOWN: ask the file system, without following.
			var st unix.Stat_t
			if unix.Fstatat(f.fd, d.Name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
				d.Type = toStat(&st).Mode.Type()
			}
		}
		out = append(out, d)
	}
	return out, 0
}

// nextDirent parses one linux_dirent64 record.
func nextDirent(b []byte) (experimentalsys.Dirent, []byte, bool) {
	const header = 19 // d_ino, d_off, d_reclen, d_type
	if len(b) < header {
		return experimentalsys.Dirent{}, nil, false
	}
	reclen := int(binary.NativeEndian.Uint16(b[16:18]))
	if reclen < header || reclen > len(b) {
		return experimentalsys.Dirent{}, nil, false
	}
	name := b[header:reclen]
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	var typ fs.FileMode
	switch b[18] {
	case unix.DT_REG:
		typ = 0
	case unix.DT_DIR:
		typ = fs.ModeDir
	case unix.DT_LNK:
		typ = fs.ModeSymlink
	case unix.DT_FIFO:
		typ = fs.ModeNamedPipe
	case unix.DT_SOCK:
		typ = fs.ModeSocket
	case unix.DT_CHR:
		typ = fs.ModeDevice | fs.ModeCharDevice
	case unix.DT_BLK:
		typ = fs.ModeDevice
	default:
		typ = fs.ModeIrregular
	}
	return experimentalsys.Dirent{Ino: binary.NativeEndian.Uint64(b[0:8]), Name: string(name), Type: typ}, b[reclen:], true
}

// Write implements sys.File.
func (f *file[Offset]) Write(buf []byte) (int, experimentalsys.Errno) {
	if f.closed {
		return 0, experimentalsys.EBADF
	}
	if len(buf) == 0 {
		return 0, 0
	}
	if f.isDir {
		return 0, experimentalsys.EISDIR
	}
	return retry(func() (int, error) { return unix.Write(f.fd, buf) })
}

// Pwrite implements sys.File.
func (f *file[Offset]) Pwrite(buf []byte, off int64) (int, experimentalsys.Errno) {
	if f.closed {
		return 0, experimentalsys.EBADF
	}
	if off < 0 {
		return 0, experimentalsys.EINVAL
	}
	if f.isDir {
		return 0, experimentalsys.EISDIR
	}
	return retry(func() (int, error) { return unix.Pwrite(f.fd, buf, off) })
}

// Truncate implements sys.File.
func (f *file[Offset]) Truncate(size int64) experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	if size < 0 {
		return experimentalsys.EINVAL
	}
	if f.isDir {
		return experimentalsys.EISDIR
	}
	return errno(unix.Ftruncate(f.fd, size))
}

// Sync implements sys.File.
func (f *file[Offset]) Sync() experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	return errno(unix.Fsync(f.fd))
}

// Datasync implements sys.File.
func (f *file[Offset]) Datasync() experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	return errno(unix.Fdatasync(f.fd))
}

// Utimens implements sys.File, on the descriptor (utimensat with a NULL
// path, which x/sys/unix does not spell).
func (f *file[Offset]) Utimens(atim, mtim int64) experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	ts := timespecs(atim, mtim)
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(f.fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return errno(e)
	}
	return 0
}

// Close implements sys.File.
func (f *file[Offset]) Close() experimentalsys.Errno {
	if f.closed {
		return 0
	}
	f.closed = true
	return errno(unix.Close(f.fd))
}
