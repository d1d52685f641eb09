package pipeline

import (
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	var l LogLimiter
	t0 := time.Unix(1000, 0)
	if ok, n := l.Allow(t0); !ok || n != 0 {
		t.Fatalf("first message: ok=%v suppressed=%d, want it through", ok, n)
	}
	for i := range 3 {
		if ok, _ := l.Allow(t0.Add(time.Duration(i+1) * time.Second)); ok {
			t.Fatalf("message %d within the interval got through", i+2)
		}
	}
	if ok, n := l.Allow(t0.Add(LogInterval)); !ok || n != 3 {
		t.Errorf("after the interval: ok=%v suppressed=%d, want through with 3 suppressed", ok, n)
	}
}
