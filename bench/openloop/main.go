// Command openloop opens and closes a file as fast as it can, from one
// goroutine per CPU, for a fixed time, and prints how many opens it made.
// It is the load generator of bench/open-throughput.sh.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	duration := flag.Duration("d", 10*time.Second, "how long to generate opens")
	workers := flag.Int("workers", runtime.NumCPU(), "goroutines opening files")
	path := flag.String("path", "/dev/null", "file to open")
	flag.Parse()

	var opens atomic.Uint64
	deadline := time.Now().Add(*duration)
	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			var n uint64
			for {
				for range 256 {
					fd, err := unix.Open(*path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
					if err != nil {
						fmt.Fprintln(os.Stderr, "openloop:", err)
						os.Exit(1)
					}
					unix.Close(fd)
				}
				n += 256
				if time.Now().After(deadline) {
					opens.Add(n)
					return
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("opens=%d seconds=%.1f rate=%.0f/s\n", opens.Load(), duration.Seconds(), float64(opens.Load())/duration.Seconds())
}
