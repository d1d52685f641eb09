package wasmbpf

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// A guest's stdout and stderr are the slave ends of pseudo-terminals, not
// pipes: wasi-libc (like any C library) buffers a stream fully unless it
// is a terminal, so an application that prints a line per event without
// fflush would reach the log (and the line events) in 1 KiB bursts, and
// its last lines only when it exits. A terminal makes it line-buffered,
// as when it runs under ecli in a shell, unchanged. The terminal is raw
// (no \r added) and its master end is read by a goroutine into the
// source's line writer. Where no pseudo-terminal can be opened (no
// /dev/ptmx), the stream is a plain writer and is buffered by the guest.

// ptyStream is one pseudo-terminal between the guest and a writer.
type ptyStream struct {
	master, slave *os.File
	done          chan struct{} // closed when the reader has returned
}

// openPTY opens a raw pseudo-terminal whose master is copied into w by a
// goroutine the stream owns until close.
func openPTY(w io.Writer) (*ptyStream, error) {
	mfd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	master := os.NewFile(uintptr(mfd), "ptmx")
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, fmt.Errorf("unlock pty: %w", err)
	}
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		master.Close()
		return nil, fmt.Errorf("open pty peer: %w", errno)
	}
	slave := os.NewFile(sfd, "pts")
	t, err := unix.IoctlGetTermios(int(sfd), unix.TCGETS)
	if err == nil {
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ICANON | unix.ISIG | unix.IEXTEN
		err = unix.IoctlSetTermios(int(sfd), unix.TCSETS, t)
	}
	if err != nil {
		master.Close()
		slave.Close()
		return nil, fmt.Errorf("make pty raw: %w", err)
	}
	p := &ptyStream{master: master, slave: slave, done: make(chan struct{})}
	go p.copy(w)
	return p, nil
}

func (p *ptyStream) copy(w io.Writer) {
	defer close(p.done)
	buf := make([]byte, 8<<10)
	for {
		n, err := p.master.Read(buf)
		if n > 0 {
			w.Write(buf[:n])
		}
		if err != nil {
			// EIO once the slave is closed and read empty: the end.
			return
		}
	}
}

// close closes the guest's end, waits until everything it wrote has been
// copied, and closes the rest.
func (p *ptyStream) close() error {
	err := p.slave.Close()
	<-p.done
	return errors.Join(err, p.master.Close())
}
