package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

// goroutineSample is how many goroutines each creator (the function
// whose `go` statement started them) had at one moment.
type goroutineSample struct {
	T         float64        `json:"t"`
	ByCreator map[string]int `json:"by_creator"`
}

// getGoroutines reads the agent's goroutine dump (--pprof-listen,
// debug=2: every goroutine with its "created by" line) and counts the
// goroutines per creator. The goroutine serving the request is left out,
// and so are the background readers of HTTP requests (see countByCreator).
func getGoroutines(addr string) (map[string]int, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/debug/pprof/goroutine?debug=2")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get goroutine dump: %s", resp.Status)
	}
	return countByCreator(resp.Body)
}

const backgroundRead = "net/http.(*connReader).startBackgroundRead"

// countByCreator parses a debug=2 goroutine dump: blocks separated by a
// blank line, each starting "goroutine N [state]:" and, unless it is the
// main goroutine, ending "created by PKG.FUNC in goroutine M".
func countByCreator(r io.Reader) (map[string]int, error) {
	out := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	inBlock, creator, serving := false, "", false
	flush := func() {
		// net/http starts a connection's background reader for each
		// request while its handler runs and stops it after the response
		// is flushed: the soak's scrape of /metrics, answered, may still
		// have one when the dump is taken. They belong to the requests of
		// the measuring itself; a leak of connections or of stuck handlers
		// shows as the connections' own goroutines (created by
		// net/http.(*Server).Serve), which are counted.
		if creator == backgroundRead {
			serving = true
		}
		if inBlock && !serving {
			if creator == "" {
				creator = "(main)"
			}
			out[creator]++
		}
		inBlock, creator, serving = false, "", false
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "goroutine "):
			flush()
			inBlock = true
		case strings.HasPrefix(line, "created by "):
			creator = strings.TrimPrefix(line, "created by ")
			if i := strings.Index(creator, " in goroutine "); i >= 0 {
				creator = creator[:i]
			}
		case strings.Contains(line, "runtime/pprof.writeGoroutineStacks"):
			serving = true
		case line == "":
			flush()
		}
	}
	flush()
	return out, sc.Err()
}

// goroutineTrend is the leak check of a long run: for every creator, the
// fewest goroutines it had in the last third of the samples must not
// exceed the most it had in the first third. Goroutines that come and go
// (a timer's, a flush's, a connection's) leave the floor where it was; a
// leak raises it and keeps it raised. It returns the creators that grew,
// and those that varied, for the report.
func goroutineTrend(samples []goroutineSample) (grew, varied []string) {
	if len(samples) < 3 {
		return nil, nil
	}
	third := len(samples) / 3
	first, last := samples[:third], samples[len(samples)-third:]
	creators := map[string]bool{}
	for _, s := range samples {
		for c := range s.ByCreator {
			creators[c] = true
		}
	}
	names := make([]string, 0, len(creators))
	for c := range creators {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		counts := func(ss []goroutineSample) []int {
			out := make([]int, len(ss))
			for i, s := range ss {
				out[i] = s.ByCreator[c]
			}
			return out
		}
		all := counts(samples)
		lo, hi := slices.Min(all), slices.Max(all)
		if floor, peak := slices.Min(counts(last)), slices.Max(counts(first)); floor > peak {
			grew = append(grew, fmt.Sprintf("%s %d→%d", shortFunc(c), peak, floor))
		} else if lo != hi {
			varied = append(varied, fmt.Sprintf("%s %d-%d", shortFunc(c), lo, hi))
		}
	}
	return grew, varied
}

// shortFunc drops the module path of a function name:
// github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine ->
// server.(*Server).startGoRoutine.
func shortFunc(f string) string {
	if i := strings.LastIndexByte(f, '/'); i >= 0 {
		return f[i+1:]
	}
	return f
}

func orNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}
