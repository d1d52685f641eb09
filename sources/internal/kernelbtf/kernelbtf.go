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
