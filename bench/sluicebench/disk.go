package main

import (
	"os"
	"path/filepath"
	"time"
)

// measureDisk returns what the disk under dir writes with fdatasync, in
// MB/s: 256 MiB in 1 MiB writes, then one fdatasync, as a file sink with
// interval fsyncs writes it. It bounds the file sink's sustained rate:
// the page cache only absorbs a burst.
func measureDisk(dir string) (float64, error) {
	f, err := os.CreateTemp(dir, "disk-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte('a' + i%26) // not zeros, which some storage compresses away
	}
	const total = 256
	start := time.Now()
	for range total {
		if _, err := f.Write(chunk); err != nil {
			return 0, err
		}
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return float64(total<<20) / 1e6 / time.Since(start).Seconds(), nil
}

// diskDir is where the file sink runs write: the scratch directory.
func (e *benchEnv) diskDir() string { return filepath.Clean(e.tmp) }
