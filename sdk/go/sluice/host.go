package sluice

import (
	"fmt"
	"time"
)

// Level is the level of a log line.
type Level int32

// Log levels, as the ABI numbers them.
const (
	LevelDebug Level = 0
	LevelInfo  Level = 1
	LevelWarn  Level = 2
	LevelError Level = 3
)

// Log writes msg to the agent's structured log, tagged with the stage's
// name. Logging is a host call: keep it off the per-event path.
func Log(level Level, msg string) { hostLog(level, msg) }

// Debugf logs a formatted line at debug level.
func Debugf(format string, args ...any) { hostLog(LevelDebug, fmt.Sprintf(format, args...)) }

// Infof logs a formatted line at info level.
func Infof(format string, args ...any) { hostLog(LevelInfo, fmt.Sprintf(format, args...)) }

// Warnf logs a formatted line at warn level.
func Warnf(format string, args ...any) { hostLog(LevelWarn, fmt.Sprintf(format, args...)) }

// Errorf logs a formatted line at error level.
func Errorf(format string, args ...any) { hostLog(LevelError, fmt.Sprintf(format, args...)) }

// Now returns the host's wall-clock time.
func Now() time.Time { return time.Unix(0, hostNow()) }

// Counter is a metric the stage defines, exported by the agent as
// sluice_stage_guest_total{component="stage",name=STAGE,counter=NAME}. Add only touches guest
// memory; the SDK hands the sums to the host once at the end of each call,
// so counting per event is cheap.
type Counter struct {
	name    string
	pending int64
}

// NewCounter returns the counter called name. Call it once (from an init
// function or OnInit) and keep the *Counter; calling it again with the same
// name returns the same counter.
func NewCounter(name string) *Counter {
	for _, c := range current.counters {
		if c.name == name {
			return c
		}
	}
	c := &Counter{name: name}
	current.counters = append(current.counters, c)
	return c
}

// Add adds delta to the counter.
func (c *Counter) Add(delta int64) { c.pending += delta }

// Inc adds one to the counter.
func (c *Counter) Inc() { c.pending++ }

func (s *stage) flushCounters() {
	for _, c := range s.counters {
		if c.pending != 0 {
			hostCounterAdd(c.name, c.pending)
			c.pending = 0
		}
	}
}
