package synth

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestRealTimeProducerPaces: a RealTime producer asks for records at its
// rate, never ahead of it, and (as root) runs SCHED_FIFO. Without the
// gadget attached a burst is a failing getpgid, so no BPF is needed.
func TestRealTimeProducerPaces(t *testing.T) {
	const rate = 20000
	p := &Producer{Rate: rate, RealTime: true}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for p.Requested() < rate/10 {
		select {
		case <-tick.C:
		case <-time.After(time.Minute):
			t.Fatalf("%d records asked for in a minute, want %d", p.Requested(), rate/10)
		}
	}
	cancel()
	<-done
	elapsed := time.Since(start)
	if got, most := p.Requested(), uint64(elapsed.Seconds()*rate)+1; got > most {
		t.Errorf("%d records asked for in %s, more than the rate allows (%d)", got, elapsed, most)
	}
	if os.Geteuid() == 0 {
		if err := p.RealTimeErr(); err != nil {
			t.Errorf("as root: %v", err)
		}
	}
	if p.TakeLateMost() == 0 {
		t.Error("TakeLateMost: 0, want the largest tick")
	}
	if n := p.TakeLateMost(); n != 0 {
		t.Errorf("TakeLateMost after a take and no tick: %d, want 0", n)
	}
}
