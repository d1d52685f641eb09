package main

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/sluice-dev/sluice/oci"
)

// progress renders push and pull progress: a bar per blob redrawn in place
// on a terminal, one line per finished blob otherwise (logs stay readable).
type progress struct {
	w        io.Writer
	terminal bool
	mu       sync.Mutex
	last     map[string]int // percent last drawn, per blob
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, terminal: isTerminal(w), last: map[string]int{}}
}

func shortDigest(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) >= 12 {
		return hex[:12]
	}
	return d
}

func (p *progress) event(ev oci.ProgressEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := shortDigest(ev.Digest)
	switch ev.State {
	case "exists":
		fmt.Fprintf(p.w, "%s: already there (%s)\n", id, byteSize(ev.Total))
	case "done":
		if p.terminal {
			fmt.Fprintf(p.w, "\r\033[K")
		}
		fmt.Fprintf(p.w, "%s: done %s %s\n", id, byteSize(ev.Done), ev.MediaType)
		delete(p.last, id)
	case "start", "progress":
		if !p.terminal || ev.Total <= 0 {
			return
		}
		pct := int(ev.Done * 100 / ev.Total)
		if last, ok := p.last[id]; ok && last == pct {
			return
		}
		p.last[id] = pct
		const width = 30
		filled := pct * width / 100
		fmt.Fprintf(p.w, "\r\033[K%s: [%s%s] %3d%% %s/%s", id, strings.Repeat("=", filled), strings.Repeat(" ", width-filled), pct, byteSize(ev.Done), byteSize(ev.Total))
	}
}
