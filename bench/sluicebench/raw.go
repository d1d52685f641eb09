package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/synth"
	"github.com/sluice-dev/sluice/sources"
)

// rawProc is a `sluicebench rawread` child.
type rawProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// startRaw starts the bare reader; with jsonPath set it renders every
// record as a JSON line into that file (jsonLineWriter), with sluice's
// decoder and encoder when useCodec is set.
func startRaw(root string, size int, jsonPath string, useCodec bool) (*rawProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// The ring the agent gives the gadget: what it declares (1 MiB).
	args := []string{"rawread", "-object", filepath.Join(root, synth.Object(size)),
		"-ring", fmt.Sprint(max(synth.RingSize, sources.DefaultRingBufferSize)), "-tgid", fmt.Sprint(os.Getpid())}
	if jsonPath != "" {
		args = append(args, "-json", jsonPath, "-size", fmt.Sprint(size))
		if useCodec {
			args = append(args, "-codec")
		}
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &rawProc{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	if !r.out.Scan() || r.out.Text() != "ready" {
		r.close()
		return nil, fmt.Errorf("raw reader did not start: %q", r.out.Text())
	}
	return r, nil
}

func (r *rawProc) counts() (records, lost uint64, err error) {
	if _, err := io.WriteString(r.in, "\n"); err != nil {
		return 0, 0, err
	}
	if !r.out.Scan() {
		return 0, 0, fmt.Errorf("raw reader: %v", r.out.Err())
	}
	_, err = fmt.Sscanf(strings.TrimSpace(r.out.Text()), "records=%d lost=%d", &records, &lost)
	return records, lost, err
}

func (r *rawProc) close() error {
	r.in.Close()
	return r.cmd.Wait()
}

// runRaw measures the bare reader with the same phases as an agent run
// (no latency: the reader keeps no timestamps).
func (e *benchEnv) runRaw(c synthCase, res *synthResult) error {
	jsonPath := ""
	if c.Sink == "rawjson" || c.Sink == "rawcodec" {
		dir, err := e.scratch(c.String())
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		jsonPath = filepath.Join(dir, "events.jsonl")
		// Kept short as the agent's stdout is (runAgentSynth).
		defer truncating(jsonPath)()
	}
	r, err := startRaw(e.root, c.Size, jsonPath, c.Sink == "rawcodec")
	if err != nil {
		return err
	}
	defer r.close()
	pid := r.cmd.Process.Pid
	var requested uint64
	prod, stop := producing(0, e.producers)
	time.Sleep(time.Second)
	req0 := prod.Requested()
	n0, _, err := r.counts()
	if err != nil {
		stop()
		return err
	}
	p0, _ := readProc(pid)
	var rss []int64
	for end := time.Now().Add(e.window); time.Now().Before(end); {
		time.Sleep(200 * time.Millisecond)
		if ps, err := readProc(pid); err == nil {
			rss = append(rss, ps.rss)
		}
	}
	req1 := prod.Requested()
	n1, _, err := r.counts()
	p1, _ := readProc(pid)
	requested += stop()
	if err != nil {
		return err
	}
	secs := p1.at.Sub(p0.at).Seconds()
	res.EventsPerSec = float64(n1-n0) / secs
	res.RequestedPerS = float64(req1-req0) / secs
	if n1 > n0 {
		res.CPUPerEvent = float64(p1.cpu-p0.cpu) / float64(n1-n0)
	}
	res.RSSSteadyMB = median(rss) / (1 << 20)
	res.RSSPeakMB = float64(p1.hwm) / (1 << 20)
	// Every record asked for is read or counted lost.
	var records, lost uint64
	deadline := time.Now().Add(5 * time.Second)
	for {
		if records, lost, err = r.counts(); err != nil {
			return err
		}
		if records+lost >= requested || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.Requested, res.KernelLost = requested, lost
	res.KernelLostPct = 100 * float64(lost) / float64(max(requested, 1))
	res.Balanced = records+lost == requested
	if !res.Balanced {
		res.BalanceNote = fmt.Sprintf("read %d + lost %d != %d asked for", records, lost, requested)
	}
	return nil
}
