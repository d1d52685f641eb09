package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat
// (100 on every Linux architecture sluice runs on).
const clockTick = 100

// procSample is what /proc says about a process at one moment.
type procSample struct {
	at      time.Time
	cpu     time.Duration // user + system time of every thread, dead ones included
	rss     int64         // bytes
	hwm     int64         // peak RSS, bytes
	anon    int64         // RssAnon: the Go heap, stacks, the runtime's own
	file    int64         // RssFile + RssShmem: the executable, BPF maps
	threads int
}

func readProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name may hold spaces; the fields follow its ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state): utime is field 14, stime 15.
	if len(f) < 13 {
		return s, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	s.cpu = time.Duration(ut+st) * time.Second / clockTick
	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch k {
		case "VmRSS":
			s.rss = n << 10
		case "VmHWM":
			s.hwm = n << 10
		case "RssAnon":
			s.anon = n << 10
		case "RssFile", "RssShmem":
			s.file += n << 10
		case "Threads":
			s.threads = int(n)
		}
	}
	return s, sc.Err()
}

// smapsBreakdown sums the Rss of a process's mappings by what backs
// them: the Go heap and other anonymous memory, BPF maps (ring buffers,
// mapped twice by their readers), the executable, the machine code
// compiled from Wasm, and the rest.
func smapsBreakdown(pid int, exe string) (map[string]int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int64{}
	cur := "other"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			name := ""
			if len(fields) >= 6 {
				name = strings.Join(fields[5:], " ")
			}
			switch {
			case fields[1] == "r-xp" && (name == "" || strings.HasSuffix(name, "(deleted)")):
				// Machine code compiled from Wasm: anonymous as wazero maps
				// it, an unnamed file once the agent has moved it there.
				cur = "wasm code"
			case name == "" || name == "[heap]":
				cur = "anonymous"
			case strings.Contains(name, "bpf-map"):
				cur = "bpf maps"
			case name == exe:
				cur = "executable"
			case strings.HasPrefix(name, "[stack"):
				cur = "anonymous"
			default:
				cur = "other"
			}
			continue
		}
		if fields[0] == "Rss:" && len(fields) >= 2 {
			n, _ := strconv.ParseInt(fields[1], 10, 64)
			out[cur] += n << 10
		}
	}
	return out, sc.Err()
}

// load1 is the machine's one-minute load average (0 when /proc does not
// say): the soak keeps it beside the agent's CPU, since the machine is
// shared.
func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// runQueueWait is how long the threads of a process now alive have waited
// on a run queue for a CPU, in total (/proc/PID/task/TID/schedstat, the
// second field): per second of wall time, how many of its threads wanted
// a CPU and had none. On a machine shared with other work it tells a
// starved process from a slow one.
func runQueueWait(pid int) time.Duration {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // the thread exited
		}
		if f := strings.Fields(string(b)); len(f) >= 2 {
			ns, _ := strconv.ParseInt(f[1], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}
