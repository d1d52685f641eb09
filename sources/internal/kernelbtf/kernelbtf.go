// Package kernelbtf hands out the running kernel's BTF to the parts of
// sources that read it while a gadget is parsed and its decode plan
// compiled (event types, enums to render with), and lets it go when they
// have not asked for it for a while.
//
// The spec is 1.5 to 2 MB of heap (cilium/ebpf's decoder and its index of
// type names) and about 30 ms of CPU to load. A package-level cache kept
// it for the agent's life, although only starting, reloading or adding a
// gadget reads it. Here a strong reference lingers for half a minute after
// the last request, so that the dozen compilations of a start or a reload
// share one load, and a weak one stays: the spec is freed once no caller
// holds it either, and the next reload loads it again. Safe for
// concurrent use.
package kernelbtf

import (
	"sync"
	"time"
	"weak"

	"github.com/cilium/ebpf/btf"
)

// linger is how long the spec is kept after the last request.
const linger = 30 * time.Second

var (
	mu      sync.Mutex
	cached  weak.Pointer[btf.Spec]
	kept    *btf.Spec   // the strong reference, until expiry fires
	expiry  *time.Timer // drops kept linger after the last request
	missing bool        // the kernel has no BTF: not asked again
	loads   int         // how often the spec was loaded, for tests
)

// Types returns the running kernel's BTF, nil when the kernel has none
// (callers then go without). It stays loaded for as long as a caller holds
// it, and for half a minute after the last call.
func Types() *btf.Spec {
	mu.Lock()
	defer mu.Unlock()
	s := cached.Value()
	if s == nil {
		if missing {
			return nil
		}
		var err error
		if s, err = btf.LoadKernelSpec(); err != nil {
			missing = true
			return nil
		}
		loads++
		cached = weak.Make(s)
	}
	kept = s
	if expiry == nil {
		expiry = time.AfterFunc(linger, release)
	} else {
		expiry.Reset(linger)
	}
	return s
}

// release drops the strong reference: the spec lives on only while a
// caller holds it.
func release() {
	mu.Lock()
	kept = nil
	mu.Unlock()
}
