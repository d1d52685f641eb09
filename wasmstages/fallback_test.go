package wasmstages

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/interrupt"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// TestFallbackWithoutRewrite runs guests as a module the rewriter cannot
// handle would run: uninstrumented, on a runtime that checks contexts. The
// deadline and the failure kinds must hold all the same.
func TestFallbackWithoutRewrite(t *testing.T) {
	rewriteModule = func([]byte) ([]byte, interrupt.Stats, error) {
		return nil, interrupt.Stats{}, interrupt.ErrUnsupported
	}
	defer func() { rewriteModule = interrupt.Rewrite }()
	ev := []pipeline.Event{{Data: codec.AppendString(codec.AppendString(codec.AppendMapHeader(nil, 1), "comm"), "cat"), Seq: 1}}
	for _, c := range []struct {
		guest  string
		params map[string]any
		kind   string
	}{
		{"loop", nil, KindTimeout},
		{"trap", map[string]any{"trap_after": 0}, KindTrap},
		{"bomb", nil, KindOOM},
		{"filter", map[string]any{"comms": []any{"sh"}}, ""},
	} {
		module, err := os.ReadFile("testdata/" + c.guest + ".wasm")
		if err != nil {
			t.Fatal(err)
		}
		// Only the loop is meant to meet the deadline: the others would
		// trip over a short one on a loaded machine (filling 8 MiB under
		// context checks takes tens of milliseconds).
		timeout := 10 * time.Second
		if c.kind == KindTimeout {
			timeout = 100 * time.Millisecond
		}
		s, err := New(context.Background(), Config{Name: c.guest, ModuleBytes: module, Params: c.params, Timeout: timeout, MemoryLimit: 8 << 20})
		if err != nil {
			t.Fatalf("%s: %v", c.guest, err)
		}
		if s.cur.interruptible {
			t.Fatalf("%s: the module was rewritten despite the test", c.guest)
		}
		out, err := s.Process(context.Background(), ev, nil)
		se, _ := errors.AsType[*pipeline.StageError](err)
		switch {
		case c.kind == "" && (err != nil || len(out) != 1):
			t.Errorf("%s: %d events, %v; want the event kept", c.guest, len(out), err)
		case c.kind != "" && (se == nil || se.Kind != c.kind):
			t.Errorf("%s: error %v, want kind %s", c.guest, err, c.kind)
		}
		s.Close(context.Background())
	}
}
