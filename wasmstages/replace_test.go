package wasmstages

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// TestReplacementFails: when the instance that replaces a failed one
// cannot be made (here, its sluice_init rejects the params), batches fail
// with KindInit, the next attempt waits retryInstance, and a later attempt
// that works brings the stage back.
func TestReplacementFails(t *testing.T) {
	reg := pipeline.NewRegistry()
	s, err := New(context.Background(), Config{Name: "f", Module: "testdata/filter.wasm", Params: map[string]any{"comms": []any{"sh"}}, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	good := s.params
	s.params, _ = appendParams(nil, map[string]any{"comms": 5}) // the filter wants a list
	ev := []pipeline.Event{{Data: codec.AppendString(codec.AppendString(codec.AppendMapHeader(nil, 1), "comm"), "cat"), Seq: 1}}
	s.discard(context.Background(), s.cur, 0, errors.New("simulated failure"))

	// The first batch tries to make an instance; the next, within
	// retryInstance, does not try again.
	for i, want := range []string{"replace failed instance", "the last attempt to make one failed"} {
		_, err := s.Process(context.Background(), ev, nil)
		se, ok := errors.AsType[*pipeline.StageError](err)
		if !ok || se.Kind != KindInit || !strings.Contains(err.Error(), "param comms must be a list of strings") || !strings.Contains(err.Error(), want) {
			t.Fatalf("batch %d: error %v, want kind init, %q and the guest's message", i, err, want)
		}
	}
	s.params = good
	s.cur.retryAt[0] = time.Time{} // the retry delay has passed
	if out, err := s.Process(context.Background(), ev, nil); err != nil || len(out) != 1 {
		t.Fatalf("after the params are good again: %d events, %v", len(out), err)
	}
	if got := reg.Snapshot().Get(MetricInstanceRestarts, "component", "stage", "name", "f"); got != 1 {
		t.Errorf("restarts = %v, want 1 (the failed attempts do not count)", got)
	}
}
