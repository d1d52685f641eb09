package agent

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/nats-io/nats.go"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// TestAgentEmbeddedNATS runs the agent with its in-process NATS server and
// a JetStream sink, and reads a real exec event back from the bus with the
// read-only credentials the agent made (its sink used its own, unasked).
func TestAgentEmbeddedNATS(t *testing.T) {
	testutil.RequireBPF(t)
	addr := freeAddr(t)
	dataDir := t.TempDir()
	src := fmt.Sprintf(`
agent {
  name     = "bus-host"
  data_dir = %q
  nats_server {
    listen    = %q
    jetstream = true
  }
}
source "gadget" "exec" { gadget = "trace_exec" }
sink "nats" "bus" {
  url     = "nats://%s"
  subject = "sluice.{host}.{source}"
  jetstream {
    stream = "SLUICE"
    create = true
  }
}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.nats.bus]
}
`, dataDir, addr, addr)
	f, diags := config.Parse("bus.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ta := startAgent(t, f, Options{})
	defer ta.stop()

	var nc *nats.Conn
	ta.waitFor("connection to the embedded server", 10*time.Second, func() {}, func() bool {
		var err error
		reader, err := nats.NkeyOptionFromSeed(NATSReaderSeedFile(dataDir))
		if err != nil {
			return false // not made yet
		}
		nc, err = nats.Connect("nats://"+addr, reader)
		return err == nil
	})
	defer nc.Close()
	msgs := make(chan *nats.Msg, 1024)
	if _, err := nc.ChanSubscribe("sluice.bus-host.exec", msgs); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	marker := fmt.Sprintf("sluice-bus-%d", rand.Uint32())
	var found *nats.Msg
	ta.waitFor("exec event with "+marker+" on the bus", 15*time.Second,
		func() { exec.Command("/bin/true", marker).Run() },
		func() bool {
			for {
				select {
				case m := <-msgs:
					js, err := codec.AppendJSON(nil, m.Data)
					if err != nil {
						t.Fatalf("payload is not msgpack: %v", err)
					}
					if strings.Contains(string(js), marker) {
						found = m
						return true
					}
				default:
					return false
				}
			}
		})
	if found.Header.Get("Sluice-Format") != "1" || found.Header.Get("Nats-Msg-Id") == "" {
		t.Errorf("headers = %v, want the format version and a dedup id", found.Header)
	}
}

// TestSubjectFieldDiagnostics: a subject template naming a field no gadget
// feeding the sink has, or a malformed one, is a config error pointing at
// the subject attribute, found without privileges.
func TestSubjectFieldDiagnostics(t *testing.T) {
	for _, tc := range []struct {
		subject, summary, detail string
	}{
		{"sluice.{host}.{nosuch}", "Unknown field in subject template", "{nosuch} is not a field of gadget trace_exec"},
		{"sluice.{comm", "Invalid subject template", "unclosed {"},
		{"sluice..{host}", "Invalid subject template", "empty token"},
		{"sluice.{host}.", "Invalid subject template", "empty token"},
		{"sluice.>.{host}", "Invalid subject template", "wildcards"},
	} {
		t.Run(tc.subject, func(t *testing.T) {
			src := fmt.Sprintf(`source "gadget" "exec" { gadget = "trace_exec" }
sink "nats" "bus" {
  url     = "nats://127.0.0.1:4222"
  subject = %q
}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.nats.bus]
}
`, tc.subject)
			f, diags := config.Parse("s.hcl", []byte(src))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			diags = Validate(f)
			if len(diags) != 1 {
				t.Fatalf("diagnostics = %v, want one", diags)
			}
			d := diags[0]
			if d.Summary != tc.summary || !strings.Contains(d.Detail, tc.detail) {
				t.Errorf("diagnostic = %q: %q; want %q containing %q", d.Summary, d.Detail, tc.summary, tc.detail)
			}
			if d.Subject == nil || d.Subject.Start.Line != 4 || d.Subject.Start.Column != 13 {
				t.Errorf("diagnostic range = %v, want the subject value at s.hcl:4:13", d.Subject)
			}
		})
	}
	// Fields of the gadget and envelope keys are fine.
	f, diags := config.Parse("ok.hcl", []byte(`source "gadget" "exec" { gadget = "trace_exec" }
sink "nats" "bus" { subject = "sluice.{host}.{source}.{comm}" }
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.nats.bus]
}
`))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if diags := Validate(f); diags.HasErrors() {
		t.Errorf("valid subject rejected: %v", diags)
	}

	// Behind a stage the field may be added by the stage: a warning only.
	f, diags = config.Parse("staged.hcl", []byte(`source "gadget" "exec" { gadget = "trace_exec" }
stage "wasm" "users" { module = "uid-to-user" }
sink "nats" "bus" { subject = "sluice.{host}.{account}" }
pipeline "p" {
  sources = [source.gadget.exec]
  stages  = [stage.wasm.users]
  sinks   = [sink.nats.bus]
}
`))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	diags = Validate(f)
	if diags.HasErrors() || len(diags) != 1 || diags[0].Severity != hcl.DiagWarning || !strings.Contains(diags[0].Detail, `stages of pipeline "p"`) {
		t.Errorf("diagnostics for a field behind a stage = %v, want one warning naming the pipeline", diags)
	}
}
