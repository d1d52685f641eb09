package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
)

// parkedWorker is a goroutine creator with a name the test can find in
// the dump.
func parkedWorker(n int, wg *sync.WaitGroup, release <-chan struct{}) {
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
		}()
	}
}

func TestCountByCreatorReadsARealDump(t *testing.T) {
	release := make(chan struct{})
	var wg sync.WaitGroup
	parkedWorker(3, &wg, release)
	defer func() { close(release); wg.Wait() }()

	var dump bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&dump, 2); err != nil {
		t.Fatal(err)
	}
	got, err := countByCreator(&dump)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for creator, n := range got {
		if strings.HasSuffix(creator, ".parkedWorker") {
			found = true
			if n != 3 {
				t.Errorf("%s: %d goroutines, want 3 (all: %v)", creator, n, got)
			}
		}
	}
	if !found {
		t.Errorf("no creator parkedWorker in %v", got)
	}
	// The goroutine writing the dump (this test's) is not the server's
	// request handler, so it stays; the dump has more than our three.
	total := 0
	for _, n := range got {
		total += n
	}
	if total < 4 {
		t.Errorf("%d goroutines counted, want at least 4", total)
	}
}

// TestCountByCreatorLeavesOutRequestReaders: a request whose handler runs
// has a background reader (net/http), which is the request's and not the
// server's; the connection's goroutine is counted.
func TestCountByCreatorLeavesOutRequestReaders(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	}))
	defer srv.Close()
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-entered
	var dump bytes.Buffer
	err := pprof.Lookup("goroutine").WriteTo(&dump, 2)
	close(release)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dump.String(), "created by "+backgroundRead) {
		t.Fatalf("the dump has no background reader; the test no longer tests anything:\n%s", dump.String())
	}
	got, err := countByCreator(&dump)
	if err != nil {
		t.Fatal(err)
	}
	if n := got[backgroundRead]; n != 0 {
		t.Errorf("%d background readers counted, want them left out", n)
	}
	if got["net/http.(*Server).Serve"] == 0 {
		t.Errorf("the connection's goroutine is not counted: %v", got)
	}
}

func TestGoroutineTrend(t *testing.T) {
	sample := func(stable, transient, leaking int) goroutineSample {
		return goroutineSample{ByCreator: map[string]int{"a/pkg.stable": stable, "a/pkg.transient": transient, "a/pkg.leak": leaking}}
	}
	t.Run("transients come and go", func(t *testing.T) {
		var ss []goroutineSample
		for i := range 12 {
			ss = append(ss, sample(5, i%3, 1))
		}
		grew, varied := goroutineTrend(ss)
		if len(grew) != 0 {
			t.Errorf("grew = %v, want none", grew)
		}
		if len(varied) != 1 || !strings.HasPrefix(varied[0], "pkg.transient 0-2") {
			t.Errorf("varied = %v, want pkg.transient 0-2", varied)
		}
	})
	t.Run("a leak raises the floor", func(t *testing.T) {
		var ss []goroutineSample
		for i := range 12 {
			ss = append(ss, sample(5, i%3, 1+i/4))
		}
		grew, _ := goroutineTrend(ss)
		if len(grew) != 1 || grew[0] != "pkg.leak 1→3" {
			t.Errorf("grew = %v, want [pkg.leak 1→3]", grew)
		}
	})
	t.Run("too few samples judge nothing", func(t *testing.T) {
		if grew, _ := goroutineTrend([]goroutineSample{sample(1, 0, 1), sample(1, 0, 9)}); grew != nil {
			t.Errorf("grew = %v from two samples", grew)
		}
	})
}

func TestWindowMedians(t *testing.T) {
	var ss []soakSample
	for i := range 100 {
		// A flat level of 100 with a sawtooth of ±20 every 3 samples,
		// and a step to 130 from second 70 on (a leak).
		v := 100.0 + float64(i%3-1)*20
		if i >= 70 {
			v += 30
		}
		ss = append(ss, soakSample{T: float64(i), RSSMB: v})
	}
	got := windowMedians(ss, 10, 30, func(s soakSample) float64 { return s.RSSMB })
	// Windows [10,40) [40,70) [70,100): the last after the step.
	want := []float64{100, 100, 130}
	if len(got) != len(want) {
		t.Fatalf("windowMedians = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("window %d: median %v, want %v", i, got[i], want[i])
		}
	}
	// A window with fewer than half its samples is left out.
	if got := windowMedians(ss[:50], 10, 30, func(s soakSample) float64 { return s.RSSMB }); len(got) != 1 {
		t.Errorf("windows of 40 samples from 10s: %v, want one (the second has 10 of 30)", got)
	}
}
