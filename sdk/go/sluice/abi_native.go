//go:build !wasip1

package sluice

import (
	"sync"
	"time"
)

// Outside Wasm (go test on the SDK or on a stage's own logic) the host
// functions record what they are given, so tests can assert on logs and
// counters.

var nativeHost struct {
	sync.Mutex
	logs     []nativeLog
	errMsg   string
	counters map[string]int64
	now      func() time.Time
}

type nativeLog struct {
	level Level
	msg   string
}

func hostLog(level Level, msg string) {
	nativeHost.Lock()
	defer nativeHost.Unlock()
	nativeHost.logs = append(nativeHost.logs, nativeLog{level, msg})
}

func hostSetError(msg string) {
	nativeHost.Lock()
	defer nativeHost.Unlock()
	nativeHost.errMsg = msg
}

func hostCounterAdd(name string, delta int64) {
	nativeHost.Lock()
	defer nativeHost.Unlock()
	if nativeHost.counters == nil {
		nativeHost.counters = make(map[string]int64)
	}
	nativeHost.counters[name] += delta
}

func hostNow() int64 {
	nativeHost.Lock()
	now := nativeHost.now
	nativeHost.Unlock()
	if now != nil {
		return now().UnixNano()
	}
	return time.Now().UnixNano()
}
