package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// openLoopMain is `sluicebench openloop`: opens and closes /dev/null from
// one thread per CPU (or at -rate opens/s in all), once a byte arrives on
// stdin and until stdin closes, then prints "opens=N seconds=S". It is
// the load of the trace_open runs: a child, so that trace_open can follow
// its pid alone (target_pid) and the count is exact.
func openLoopMain(args []string) error {
	fs := flag.NewFlagSet("openloop", flag.ExitOnError)
	rate := fs.Int("rate", 0, "opens per second; 0: as fast as possible")
	path := fs.String("path", "/dev/null", "file to open")
	fs.Parse(args)
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadByte(); err != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, in)
		cancel()
	}()
	var opens atomic.Uint64
	start := time.Now()
	open := func() {
		if fd, err := unix.Open(*path, unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
			unix.Close(fd)
		}
	}
	var wg sync.WaitGroup
	if *rate > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			var n uint64
			for ctx.Err() == nil {
				<-t.C
				for due := uint64(time.Since(start).Seconds() * float64(*rate)); n < due; n++ {
					open()
				}
				opens.Store(n)
			}
		}()
	} else {
		for range runtime.NumCPU() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				for ctx.Err() == nil {
					for range 256 {
						open()
					}
					opens.Add(256)
				}
			}()
		}
	}
	wg.Wait()
	fmt.Printf("opens=%d seconds=%.3f\n", opens.Load(), time.Since(start).Seconds())
	return nil
}

// openLoop is an `sluicebench openloop` child.
type openLoop struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out strings.Builder
}

func startOpenLoop(rate int) (*openLoop, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	l := &openLoop{cmd: exec.Command(self, "openloop", "-rate", fmt.Sprint(rate))}
	l.cmd.Stdout, l.cmd.Stderr = &l.out, os.Stderr
	if l.in, err = l.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	return l, l.cmd.Start()
}

func (l *openLoop) pid() int { return l.cmd.Process.Pid }

func (l *openLoop) start() error {
	_, err := l.in.Write([]byte{1})
	return err
}

// stop ends the loop and returns its opens and seconds.
func (l *openLoop) stop() (uint64, float64, error) {
	l.in.Close()
	if err := l.cmd.Wait(); err != nil {
		return 0, 0, err
	}
	var opens uint64
	var secs float64
	_, err := fmt.Sscanf(strings.TrimSpace(l.out.String()), "opens=%d seconds=%g", &opens, &secs)
	return opens, secs, err
}

// produceMain is `sluicebench produce`: the synthetic producer on its own,
// for profiling an agent by hand (the gadget must be loaded by it).
func produceMain(args []string) error {
	fs := flag.NewFlagSet("produce", flag.ExitOnError)
	rate := fs.Int("rate", 0, "records per second; 0: flat out")
	threads := fs.Int("threads", runtime.NumCPU(), "producer threads")
	d := fs.Duration("d", 10*time.Second, "how long")
	fs.Parse(args)
	p, stop := producing(*rate, *threads)
	time.Sleep(*d)
	n := stop()
	_ = p
	fmt.Printf("requested=%d rate=%.0f/s\n", n, float64(n)/d.Seconds())
	return nil
}
