package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// The ranges of the numeric attributes, checked when the config is decoded
// (so `sluice config validate` reports them): a value past them is a typo
// or an attack, not a setting. Without them a huge batch.max_events passed
// validation and then exhausted memory, buffer_size wrapped around 2^32
// (4097MiB became 1MiB, silently), and a duration of 1ns spun a core.
// docs/config.md lists them beside each attribute.

type intBound struct{ min, max int }
type sizeBound struct{ min, max int64 }
type durationBound struct{ min, max time.Duration }

const day = 24 * time.Hour

var (
	// pipeline
	queueEventsBound = intBound{1, 1 << 22}
	queueBytesBound  = sizeBound{4 << 10, 16 << 30}
	batchEventsBound = intBound{1, 1 << 16}
	batchDelayBound  = durationBound{100 * time.Microsecond, time.Minute}

	// agent
	shutdownGraceBound = durationBound{100 * time.Millisecond, time.Hour}
	// Below 16 MiB the collector would run without pause in any agent.
	memoryLimitBound  = sizeBound{16 << 20, 1 << 40}
	gcPercentBound    = intBound{10, 1000}
	maxProcsBound     = intBound{1, 1024}
	lossIntervalBound = durationBound{100 * time.Millisecond, day}

	// source "gadget": a BPF ring buffer's size is a uint32 of a power of
	// two; perf buffers are per CPU.
	bufferSizeBound = sizeBound{4 << 10, 1 << 30}
	// iterators and map iterators: how often they run, and how often
	intervalBound = durationBound{10 * time.Millisecond, day}
	runsBound     = intBound{1, 1_000_000_000}
	// perf_event sampling, in Hz (the kernel's perf_event_max_sample_rate
	// defaults to 100000)
	sampleFrequencyBound = intBound{1, 100_000}

	// sink "stdout"
	maxRowsBound = intBound{1, 1_000_000}

	// sink "file"
	fsyncIntervalBound = durationBound{time.Millisecond, time.Hour}
	rotateSizeBound    = sizeBound{4 << 10, 1 << 40}
	rotateAgeBound     = durationBound{time.Second, 366 * day}
	retentionAgeBound  = durationBound{time.Minute, 100 * 366 * day}
	retentionFileBound = intBound{1, 1_000_000}

	// sink "nats"
	natsBatchEventsBound = intBound{1, 1 << 16}
	natsBatchBytesBound  = sizeBound{1 << 10, 64 << 20} // NATS's own payload ceiling
	natsBatchDelayBound  = durationBound{100 * time.Microsecond, time.Minute}
	spoolBytesBound      = sizeBound{1 << 20, 1 << 40}
	streamAgeBound       = durationBound{time.Second, 100 * 366 * day}
	dedupWindowBound     = durationBound{time.Second, 30 * day}
	ackTimeoutBound      = durationBound{10 * time.Millisecond, 10 * time.Minute}
	maxPendingBound      = intBound{1, 1 << 16}

	// stage "wasm"
	wasmTimeoutBound = durationBound{10 * time.Microsecond, time.Minute}
	wasmMemoryBound  = sizeBound{minWasmMemory, maxWasmMemory}
	wasmWorkersBound = intBound{1, MaxWasmWorkers}
	wasmTickBound    = durationBound{time.Millisecond, day}
	reloadPollBound  = durationBound{100 * time.Millisecond, day}
	// hot swap: errors of a new version that roll it back, and how long
	// after the swap they count
	rollbackErrorsBound = intBound{1, 1_000_000}
	rollbackWindowBound = durationBound{time.Second, day}
)

// evalIntIn decodes a whole number within b.
func evalIntIn(attr *hcl.Attribute, ectx *hcl.EvalContext, b intBound) (int, bool, hcl.Diagnostics) {
	n, ok, diags := evalPositiveInt(attr, ectx)
	if ok && (n < b.min || n > b.max) {
		return 0, false, append(diags, outOfRange(attr, fmt.Sprint(b.min), fmt.Sprint(b.max), fmt.Sprint(n)))
	}
	return n, ok, diags
}

// evalSizeIn decodes a byte size within b.
func evalSizeIn(attr *hcl.Attribute, ectx *hcl.EvalContext, b sizeBound) (int64, bool, hcl.Diagnostics) {
	n, ok, diags := evalSize(attr, ectx)
	if ok && (n < b.min || n > b.max) {
		got := FormatSize(n)
		if !strings.HasSuffix(got, "B") || strings.HasSuffix(got, "iB") {
			got = fmt.Sprintf("%s (%d bytes)", got, n)
		}
		return 0, false, append(diags, outOfRange(attr, FormatSize(b.min), FormatSize(b.max), got))
	}
	return n, ok, diags
}

// durationIn decodes a duration within b, keeping def when it is invalid.
func durationIn[T ~int64](attr *hcl.Attribute, ectx *hcl.EvalContext, def T, b durationBound) (T, hcl.Diagnostics) {
	v, ok, diags := evalDuration(attr, ectx)
	if !ok {
		return def, diags
	}
	if v < b.min || v > b.max {
		return def, append(diags, outOfRange(attr, formatDuration(b.min), formatDuration(b.max), formatDuration(v)))
	}
	return T(v), diags
}

func outOfRange(attr *hcl.Attribute, lo, hi, got string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Value out of range for %q", attr.Name),
		Detail:   fmt.Sprintf("%s must be from %s to %s; got %s.", attr.Name, lo, hi, got),
		Subject:  attr.Expr.Range().Ptr(),
	}
}

// FormatSize writes n in the largest binary unit that divides it (4KiB,
// 1GiB), or in bytes.
func FormatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%dB", n)
}

// formatDuration writes d as a config would: "1h" rather than "1h0m0s",
// whole days as "366d".
func formatDuration(d time.Duration) string {
	if d >= day && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
