package wasmstages

import (
	"errors"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// Version names a module version beyond its bytes: the identity an operator
// rolls out and the place it came from.
type Version struct {
	// Digest is "sha256:<hex>": the image's digest for a module from an OCI
	// image (what the registry and `sluice rollout` show), else the digest of
	// the module's bytes.
	Digest string
	// Ref is where the version came from: an OCI reference, a file path or
	// a built-in stage's name; "" when unknown.
	Ref string
}

// Running describes the version a stage runs.
type Running struct {
	Version
	// Module is the SHA-256 of the module's bytes, in hex.
	Module string
	// Seq is 0 for the version the stage started with and grows by one with
	// every swap.
	Seq int
	// Since is when the version started serving.
	Since time.Time
}

// ModuleDigest returns the digest of a module's bytes as a Version's
// Digest spells it: "sha256:<hex>".
func ModuleDigest(module []byte) string { return "sha256:" + digestOf(module) }

// ShortDigest is the first 12 hex digits of a "sha256:<hex>" or bare hex
// digest, for log lines.
func ShortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

// Results of a reload attempt, the result label of MetricReloads. Swap
// counts ReloadOK and the load failures; a caller that fetches modules
// (the agent, from OCI registries) counts its own failures with the same
// metric.
const (
	ReloadOK          = "ok"           // the version was swapped in
	ReloadCompile     = "compile"      // the module did not compile
	ReloadABI         = "abi"          // the module does not implement the stage ABI
	ReloadMemoryLimit = "memory_limit" // the module needs more memory than memory_limit at start
	ReloadInit        = "init"         // instantiation or sluice_init failed
)

var (
	// ErrCompile marks a module wazero could not compile.
	ErrCompile = errors.New("compile module")
	// ErrMemoryLimit marks a module that needs more memory at start than
	// the stage's memory limit.
	ErrMemoryLimit = errors.New("module needs more memory than the limit")
)

// ReloadResult names the result label of a failed load (New, Swap): one
// of ReloadCompile, ReloadABI, ReloadMemoryLimit, ReloadInit.
func ReloadResult(err error) string {
	switch {
	case errors.Is(err, ErrMemoryLimit):
		return ReloadMemoryLimit
	case errors.Is(err, ErrABI):
		return ReloadABI
	case errors.Is(err, ErrCompile):
		return ReloadCompile
	}
	return ReloadInit
}

// ReloadResults are the results a Stage counts itself: ReloadOK and the
// load failures. A caller that fetches modules adds its own.
func ReloadResults() []string {
	return []string{ReloadOK, ReloadCompile, ReloadABI, ReloadMemoryLimit, ReloadInit}
}

// ReloadCounter returns the counter of stage's reload attempts with result,
// the series MetricReloads{component="stage", name=stage, result}. Safe for
// concurrent use.
func ReloadCounter(reg *pipeline.Registry, stage, result string) *pipeline.Counter {
	return reg.Component("stage", stage).Counter(MetricReloads,
		"Module versions a Wasm stage tried to swap in, by result (ok, or why the running version stayed).", "result", result)
}

// StampKey is the key a stage with Config.StampVersion adds to each event
// it outputs; its value is the Digest of the version that processed the
// event.
func StampKey(stage string) string { return "stage." + stage + ".digest" }

// appendStamp encodes the key and value stampEvents appends to events.
func appendStamp(dst []byte, stage, digest string) []byte {
	return codec.AppendString(codec.AppendString(dst, StampKey(stage)), digest)
}

// stampEvents makes every event of evs carry stamp (an encoded key and
// value) as one more key of its map. The events' bytes are shared and
// immutable, so each is copied once, with a map header one larger, into one
// buffer for the whole batch: a copy, not a decode and re-encode. An event
// that is not a map is left as it is (a stage only ever outputs maps).
func stampEvents(evs []pipeline.Event, stamp []byte) {
	if len(evs) == 0 {
		return
	}
	size := 0
	for i := range evs {
		size += len(evs[i].Data) + len(stamp) + 4 // a header grows by at most 4 bytes
	}
	buf := make([]byte, 0, size)
	for i := range evs {
		d := evs[i].Data
		n, rest, err := codec.ReadMapHeader(d)
		if err != nil {
			continue
		}
		start := len(buf)
		buf = codec.AppendMapHeader(buf, n+1)
		buf = append(buf, rest...)
		buf = append(buf, stamp...)
		evs[i].Data = buf[start:len(buf):len(buf)]
	}
}
