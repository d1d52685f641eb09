package jail

import (
	"errors"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// opener opens name relative to the directory root without leaving it,
// like openat(2) with flags and mode. A path that would leave the root
// fails with EXDEV.
type opener func(root int, name string, flags int, mode uint32) (int, error)

// maxSymlinks bounds the links one resolution follows, like the kernel's
// limit (40): a loop of links fails with ELOOP.
const maxSymlinks = 40

var (
	probeOnce   sync.Once
	haveOpenat2 bool
)

// defaultOpener is openat2 when the kernel offers it, the user-space walk
// otherwise. The probe runs once per process.
func defaultOpener() opener {
	probeOnce.Do(func() {
		fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err == nil {
			unix.Close(fd)
			haveOpenat2 = true
			return
		}
		// "/" from AT_FDCWD is absolute, which RESOLVE_BENEATH refuses
		// with EXDEV: that answer also proves the call exists.
		haveOpenat2 = errors.Is(err, unix.EXDEV)
	})
	if haveOpenat2 {
		return openat2Beneath
	}
	return walkBeneath
}

// openat2Beneath resolves name with the kernel's RESOLVE_BENEATH, which
// refuses ".." above the root, absolute paths and absolute links, and
// RESOLVE_NO_MAGICLINKS (/proc/<pid>/fd and the like).
func openat2Beneath(root int, name string, flags int, mode uint32) (int, error) {
	how := &unix.OpenHow{
		Flags:   uint64(flags) | unix.O_CLOEXEC,
		Mode:    uint64(mode),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	if flags&unix.O_CREAT == 0 && flags&unix.O_TMPFILE != unix.O_TMPFILE {
		how.Mode = 0 // openat2 refuses a mode without O_CREAT
	}
	if name == "" {
		name = "."
	}
	for tries := 0; ; tries++ {
		fd, err := unix.Openat2(root, name, how)
		// EAGAIN: a rename or mount raced the lookup; the kernel asks
		// for a retry rather than risk a wrong answer.
		if (err == unix.EAGAIN || err == unix.EINTR) && tries < 16 {
			continue
		}
		return fd, err
	}
}

// walkBeneath resolves name one component at a time, for kernels without
// openat2. Every step is an openat(2) relative to the directory reached so
// far with O_NOFOLLOW; a link is read and its target spliced into the
// remaining path; ".." pops the walk's own stack and so cannot climb above
// root, whatever happens to the directories meanwhile.
func walkBeneath(root int, name string, flags int, mode uint32) (int, error) {
	dirs := []int{root} // dirs[0] is the caller's
	defer func() {
		for _, d := range dirs[1:] {
			unix.Close(d)
		}
	}()
	if strings.HasPrefix(name, "/") {
		return -1, unix.EXDEV
	}
	if strings.HasSuffix(name, "/") {
		flags |= unix.O_DIRECTORY
	}
	rest := splitPath(name)
	links, retries := 0, 0
	for {
		cur := dirs[len(dirs)-1]
		// Drop "." and resolve ".." from the stack until a name is next.
		for len(rest) > 0 && (rest[0] == "." || rest[0] == "..") {
			if rest[0] == ".." {
				if len(dirs) == 1 {
					return -1, unix.EXDEV
				}
				unix.Close(dirs[len(dirs)-1])
				dirs = dirs[:len(dirs)-1]
				cur = dirs[len(dirs)-1]
			}
			rest = rest[1:]
		}
		if len(rest) == 0 {
			// The path ends at a directory of the walk.
			return unix.Openat(cur, ".", flags|unix.O_CLOEXEC, mode)
		}
		comp, last := rest[0], len(rest) == 1
		rest = rest[1:]
		if last && flags&unix.O_PATH == 0 {
			// Open the last component for real; a link there is
			// followed below unless the caller said O_NOFOLLOW.
			fd, err := unix.Openat(cur, comp, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
			if err == nil {
				return fd, nil
			}
			if err != unix.ELOOP || flags&unix.O_NOFOLLOW != 0 {
				return -1, err
			}
			if flags&(unix.O_CREAT|unix.O_EXCL) == unix.O_CREAT|unix.O_EXCL {
				return -1, unix.EEXIST
			}
		}
		fd, err := unix.Openat(cur, comp, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, err
		}
		isLink := st.Mode&unix.S_IFMT == unix.S_IFLNK
		if last && flags&unix.O_PATH == 0 && !isLink {
			// The link the real open met is gone (a rename raced us):
			// open the component again.
			unix.Close(fd)
			if retries++; retries > maxSymlinks {
				return -1, unix.ELOOP
			}
			rest = append(rest, comp)
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			if last && flags&unix.O_NOFOLLOW != 0 {
				// O_PATH|O_NOFOLLOW: the link itself, as the kernel does.
				return fd, nil
			}
			target, err := readlinkFd(fd)
			unix.Close(fd)
			if err != nil {
				return -1, err
			}
			if links++; links > maxSymlinks {
				return -1, unix.ELOOP
			}
			if strings.HasPrefix(target, "/") {
				return -1, unix.EXDEV
			}
			if strings.HasSuffix(target, "/") && last {
				flags |= unix.O_DIRECTORY
			}
			rest = append(splitPath(target), rest...)
		case unix.S_IFDIR:
			if last {
				// O_PATH of a directory: the descriptor is the answer.
				return fd, nil
			}
			dirs = append(dirs, fd)
		default:
			if !last {
				unix.Close(fd)
				return -1, unix.ENOTDIR
			}
			if flags&unix.O_DIRECTORY != 0 {
				unix.Close(fd)
				return -1, unix.ENOTDIR
			}
			return fd, nil // O_PATH of a file
		}
	}
}

// splitPath splits a relative path into its components, without empty ones.
func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// readlinkFd reads the target of the link an O_PATH|O_NOFOLLOW descriptor
// refers to.
func readlinkFd(fd int) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size >= unix.PathMax*4 {
			return "", unix.ENAMETOOLONG
		}
	}
}
