package wasmstages_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice/wasmstages"
)

// messages is a slog.Handler that keeps messages as given, as a console
// handler printing them raw would.
type messages struct {
	mu   sync.Mutex
	msgs []string
}

func (m *messages) Enabled(context.Context, slog.Level) bool { return true }
func (m *messages) Handle(_ context.Context, r slog.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs = append(m.msgs, r.Message)
	return nil
}
func (m *messages) WithAttrs([]slog.Attr) slog.Handler { return m }
func (m *messages) WithGroup(string) slog.Handler      { return m }

// rawControl returns the first control character in s a terminal acts on.
func rawControl(s string) (rune, bool) {
	for _, c := range s {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) || c == '\u202e' {
			return c, true
		}
	}
	return 0, false
}

// TestGuestTextIsEscaped: what a guest says (its log lines, its stdout and
// stderr, its error messages) reaches logs, diagnostics and the CLI with
// escape sequences escaped, whatever handler prints it.
func TestGuestTextIsEscaped(t *testing.T) {
	const evil = "\x1b]0;owned\x07\x1b[2Jfake\u202eline\u009b31m"
	var logs messages
	newStage(t, wasmstages.Config{Name: "escape", Module: guest("escape"), Logger: slog.New(&logs),
		Grants: wasmstages.Grants{Stdout: true, Stderr: true}, Params: map[string]any{"ops": []string{"say " + evil}}})
	said := 0
	for _, m := range logs.msgs {
		if c, raw := rawControl(m); raw {
			t.Errorf("a guest line reached the log with the raw control character %U: %q", c, m)
		}
		if strings.Contains(m, `\x1b]0;owned\x07\x1b[2Jfake\u202eline\u009b31m`) {
			said++
		}
	}
	if said != 3 {
		t.Errorf("%d escaped lines (log, stdout, stderr); want 3: %q", said, logs.msgs)
	}
	// A failing sluice_init: its message is the error `sluice config
	// validate` and the agent print.
	_, err := wasmstages.New(context.Background(), wasmstages.Config{Name: "escape", Module: guest("escape"),
		Params: map[string]any{"ops": []string{"fail " + evil}}})
	if !errors.Is(err, wasmstages.ErrInit) {
		t.Fatalf("New: %v; want ErrInit", err)
	}
	if c, raw := rawControl(err.Error()); raw {
		t.Errorf("the init error holds the raw control character %U: %q", c, err)
	}
	if !strings.Contains(err.Error(), `\x1b]0;owned`) {
		t.Errorf("init error %q lacks the escaped message", err)
	}
}
