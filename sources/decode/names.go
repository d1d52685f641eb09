package decode

import (
	"math"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/internal/syscalls"
)

// errnoName returns "ENOENT" for 2, or "E<n>" for numbers without a name.
func errnoName(e int64) string {
	if e > 0 && e < 4096 {
		if n := unix.ErrnoName(syscall.Errno(e)); n != "" {
			return n
		}
	}
	return "E" + strconv.FormatInt(e, 10)
}

// signalName returns "SIGUSR1" for 10, "SIGRT<n>" for real-time signals.
func signalName(s uint64) string {
	if s == 0 {
		return ""
	}
	if s < 65 {
		if n := unix.SignalName(syscall.Signal(s)); n != "" {
			return n
		}
		if s >= 34 {
			return "SIGRT" + strconv.FormatUint(s-34, 10)
		}
	}
	return "SIG" + strconv.FormatUint(s, 10)
}

// syscallName names syscall n of the host's architecture (the one whose
// kernel recorded it); numbers the table lacks render as syscall_<n>.
func syscallName(n uint64) string {
	if n < 1<<16 {
		if name, ok := syscalls.Host().Name(int(n)); ok {
			return name
		}
	}
	return "syscall_" + strconv.FormatUint(n, 10)
}

// openFlagNames are the open(2) flags in the order they are rendered. A flag
// whose bits include another's (O_SYNC includes O_DSYNC, O_TMPFILE includes
// O_DIRECTORY) comes first, and the bits it covers are not rendered again.
// The values come from x/sys/unix, so they are right for each architecture.
var openFlagNames = []struct {
	name string
	bits uint64
}{
	{"O_CREAT", unix.O_CREAT},
	{"O_EXCL", unix.O_EXCL},
	{"O_NOCTTY", unix.O_NOCTTY},
	{"O_TRUNC", unix.O_TRUNC},
	{"O_APPEND", unix.O_APPEND},
	{"O_NONBLOCK", unix.O_NONBLOCK},
	{"O_SYNC", unix.O_SYNC},
	{"O_DSYNC", unix.O_DSYNC},
	{"O_ASYNC", unix.O_ASYNC},
	{"O_DIRECT", unix.O_DIRECT},
	{"O_LARGEFILE", largeFile},
	{"O_TMPFILE", unix.O_TMPFILE},
	{"O_DIRECTORY", unix.O_DIRECTORY},
	{"O_NOFOLLOW", unix.O_NOFOLLOW},
	{"O_NOATIME", unix.O_NOATIME},
	{"O_CLOEXEC", unix.O_CLOEXEC},
	{"O_PATH", unix.O_PATH},
}

// appendOpenFlags renders open flags as "O_WRONLY|O_CREAT|O_TRUNC"; bits
// without a name are rendered in hex.
func appendOpenFlags(dst []byte, v uint64) []byte {
	switch v & unix.O_ACCMODE {
	case unix.O_RDONLY:
		dst = append(dst, "O_RDONLY"...)
	case unix.O_WRONLY:
		dst = append(dst, "O_WRONLY"...)
	case unix.O_RDWR:
		dst = append(dst, "O_RDWR"...)
	default:
		dst = append(dst, "O_ACCMODE"...)
	}
	rest := v &^ unix.O_ACCMODE
	for _, f := range openFlagNames {
		if f.bits != 0 && rest&f.bits == f.bits {
			dst = append(dst, '|')
			dst = append(dst, f.name...)
			rest &^= f.bits
		}
	}
	if rest != 0 {
		dst = append(dst, "|0x"...)
		dst = strconv.AppendUint(dst, rest, 16)
	}
	return dst
}

// appendFileMode renders a mode like ls -l: "-rw-r--r--", "drwxr-xr-x".
func appendFileMode(dst []byte, m uint32) []byte {
	var typ byte
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		typ = 'd'
	case unix.S_IFLNK:
		typ = 'l'
	case unix.S_IFCHR:
		typ = 'c'
	case unix.S_IFBLK:
		typ = 'b'
	case unix.S_IFIFO:
		typ = 'p'
	case unix.S_IFSOCK:
		typ = 's'
	default:
		typ = '-'
	}
	dst = append(dst, typ)
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if m&(1<<(8-i)) != 0 {
			dst = append(dst, rwx[i])
		} else {
			dst = append(dst, '-')
		}
	}
	n := len(dst)
	special := func(bit uint32, at int, set, unsetExec byte) {
		if m&bit == 0 {
			return
		}
		if dst[at] == 'x' {
			dst[at] = set
		} else {
			dst[at] = unsetExec
		}
	}
	special(unix.S_ISUID, n-7, 's', 'S')
	special(unix.S_ISGID, n-4, 's', 'S')
	special(unix.S_ISVTX, n-1, 't', 'T')
	return dst
}

func protoName(p uint64) string {
	switch p {
	case 0:
		return "IP"
	case 1:
		return "ICMP"
	case 6:
		return "TCP"
	case 17:
		return "UDP"
	case 33:
		return "DCCP"
	case 58:
		return "ICMPv6"
	case 132:
		return "SCTP"
	case 136:
		return "UDPLITE"
	case 262:
		return "MPTCP"
	}
	return "proto#" + strconv.FormatUint(p, 10)
}

// igTimeLayout is how Inspektor Gadget prints a gadget_timestamp X_raw.
const igTimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// igErrnoName is IG's rendering of a non-zero errno: "ENOENT", or
// "error#N" for numbers without a name.
func igErrnoName(e int64) string {
	if e > 0 && e < 1<<31 {
		if n := unix.ErrnoName(syscall.Errno(e)); n != "" {
			return n
		}
	}
	return "error#" + strconv.FormatInt(e, 10)
}

// igSignalName is IG's rendering of a signal: "SIGUSR1", or "signal#N"
// (0 and the real-time signals have no name).
func igSignalName(s uint64) string {
	if s < 1<<31 {
		if n := unix.SignalName(syscall.Signal(s)); n != "" {
			return n
		}
	}
	return "signal#" + strconv.FormatUint(s, 10)
}

// igSyscallName is IG's rendering of a syscall number: "SYS_OPENAT", or
// "SYS_UNKNOWN".
func igSyscallName(n uint64) string {
	if names := igSyscallNames(); n < uint64(len(names)) && names[n] != "" {
		return names[n]
	}
	return "SYS_UNKNOWN"
}

// igSyscallNames holds "SYS_OPENAT" for every syscall of the host's
// table, built once: the decode path neither allocates nor upper-cases.
var igSyscallNames = sync.OnceValue(func() []string {
	var names []string
	for nr := 0; nr < 1<<12; nr++ {
		if name, ok := syscalls.Host().Name(nr); ok {
			for len(names) < nr {
				names = append(names, "")
			}
			names = append(names, "SYS_"+strings.ToUpper(name))
		}
	}
	return names
})

// appendHumanBytes renders a byte count as IG does (go-humanize's Bytes: SI
// units, one decimal below 10): "9 B", "10 kB", "1.5 MB".
func appendHumanBytes(dst []byte, s uint64) []byte {
	if s < 10 {
		dst = strconv.AppendUint(dst, s, 10)
		return append(dst, " B"...)
	}
	const base = 1000.0
	suffixes := [...]string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	e := math.Floor(math.Log(float64(s)) / math.Log(base))
	val := math.Floor(float64(s)/math.Pow(base, e)*10+0.5) / 10
	prec := 0
	if val < 10 {
		prec = 1
	}
	dst = strconv.AppendFloat(dst, val, 'f', prec, 64)
	dst = append(dst, ' ')
	return append(dst, suffixes[int(e)]...)
}

// appendDuration renders nanoseconds as IG does: "800ns", "12.50µs",
// "3.20ms", and Go's time.Duration text from a second up.
func appendDuration(dst []byte, d time.Duration) []byte {
	switch {
	case d < time.Microsecond:
		dst = strconv.AppendInt(dst, d.Nanoseconds(), 10)
		return append(dst, "ns"...)
	case d < time.Millisecond:
		dst = strconv.AppendFloat(dst, float64(d)/float64(time.Microsecond), 'f', 2, 64)
		return append(dst, "µs"...)
	case d < time.Second:
		dst = strconv.AppendFloat(dst, float64(d)/float64(time.Millisecond), 'f', 2, 64)
		return append(dst, "ms"...)
	}
	return append(dst, d.String()...)
}
