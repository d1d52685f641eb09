package pipeline

import (
	"sync"
	"time"
)

// LogInterval is how often a LogLimiter lets a message through.
const LogInterval = 10 * time.Second

// LogLimiter lets one log message through per LogInterval and counts the
// rest, so that a failure repeating per batch cannot flood the log; the
// next message that passes says how many were suppressed. The zero value is
// ready, and it is safe for concurrent use.
type LogLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Allow reports whether a message may be logged at now, and how many were
// suppressed since the last one that was.
func (l *LogLimiter) Allow(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < LogInterval {
		l.suppressed++
		return false, 0
	}
	suppressed, l.suppressed, l.last = l.suppressed, 0, now
	return true, suppressed
}
