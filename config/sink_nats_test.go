package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/hcl/v2"
)

func TestNATSSinkAndServer(t *testing.T) {
	src := `
agent {
  data_dir = "/tmp/sluice-x"
  nats_server {
    listen    = "127.0.0.1:14222"
    jetstream = true
  }
}
source "gadget" "exec" { gadget = "trace_exec" }
sink "nats" "siem" {
  url      = "nats://10.0.0.1:4222"
  subject  = "sec.{host}.{comm}"
  encoding = "json"
  token    = "t"
  tls { ca_file = "/ca.pem" }
  spool {
    max_bytes = "64MiB"
    when_full = "drop_oldest"
  }
  jetstream {
    stream           = "SLUICE"
    create           = true
    subjects         = ["sec.>"]
    max_age          = "24h"
    duplicate_window = "10m"
  }
  batch {
    max_events = 500
    max_delay  = "20ms"
  }
}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.nats.siem]
}
`
	f, diags := Parse("n.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want := &NATSSink{URL: "nats://10.0.0.1:4222", Subject: "sec.{host}.{comm}", Encoding: "json", NATSAuth: NATSAuth{Token: "t", CAFile: "/ca.pem"},
		Spool:     NATSSpool{Enabled: true, MaxBytes: 64 << 20, WhenFull: "drop_oldest"},
		JetStream: &NATSJetStream{Stream: "SLUICE", Create: true, Subjects: []string{"sec.>"}, MaxAge: 24 * time.Hour, DuplicateWindow: 10 * time.Minute},
		Batch:     &NATSBatch{MaxEvents: 500, MaxBytes: DefaultNATSBatchMaxBytes, MaxDelay: 20 * time.Millisecond}}
	if diff := cmp.Diff(want, f.Sinks[0].NATS, cmpopts.IgnoreTypes(hcl.Range{})); diff != "" {
		t.Errorf("nats sink (-want +got):\n%s", diff)
	}
	wantServer := &NATSServer{Listen: "127.0.0.1:14222", JetStream: true, StoreDir: "/tmp/sluice-x/nats", Auth: NATSAuthNKeys}
	if diff := cmp.Diff(wantServer, f.Agent.NATSServer, cmpopts.IgnoreTypes(hcl.Range{})); diff != "" {
		t.Errorf("nats_server (-want +got):\n%s", diff)
	}

	// The diagnostics of bad values are pinned in testdata/diags/sink_nats.hcl.
}

func TestDecodeControl(t *testing.T) {
	src := `
agent {
  group = "web"
  control {
    nats {
      url        = "nats://10.0.0.1:4222,nats://10.0.0.2:4222"
      replicas   = 3
      creds_file = "/etc/sluice/agent.creds"
      tls { ca_file = "/etc/sluice/ca.pem" }
    }
  }
}
source "gadget" "exec" { gadget = "trace_exec" }
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
}
`
	f, diags := Parse("c.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want := &ControlNATS{URL: "nats://10.0.0.1:4222,nats://10.0.0.2:4222", Bucket: DefaultControlBucket, StatusBucket: DefaultControlBucket + StatusBucketSuffix,
		Replicas: 3, NATSAuth: NATSAuth{CredsFile: "/etc/sluice/agent.creds", CAFile: "/etc/sluice/ca.pem"}}
	if f.Agent.Control == nil {
		t.Fatal("no control block decoded")
	}
	if diff := cmp.Diff(want, f.Agent.Control.NATS, cmpopts.IgnoreTypes(hcl.Range{})); diff != "" {
		t.Errorf("control nats (-want +got):\n%s", diff)
	}
	if f.Agent.Group != "web" {
		t.Errorf("group = %q", f.Agent.Group)
	}
	f, diags = Parse("none.hcl", []byte(src[strings.Index(src, "source"):]))
	if diags.HasErrors() || f.Agent.Control != nil || f.Agent.Group != "" {
		t.Errorf("without an agent block: control %v, group %q, %v", f.Agent.Control, f.Agent.Group, diags)
	}
}

// TestNATSServerWithoutAuthIsWarned: auth = "none" opens the bus to every
// local user; the config says so, at the attribute.
func TestNATSServerWithoutAuthIsWarned(t *testing.T) {
	const src = `agent {
  nats_server {
    auth = "none"
  }
}
source "gadget" "exec" { gadget = "trace_exec" }
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
}
`
	f, diags := Parse("open.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if f.Agent.NATSServer.Auth != NATSAuthNone {
		t.Errorf("auth = %q; want none", f.Agent.NATSServer.Auth)
	}
	if len(diags) != 1 || diags[0].Severity != hcl.DiagWarning || diags[0].Subject == nil || diags[0].Subject.Start.Line != 3 {
		t.Fatalf("diagnostics = %v; want one warning at open.hcl:3", diags)
	}
	if d := diags[0].Detail; !strings.Contains(d, "forged") || !strings.Contains(d, "delete") {
		t.Errorf("warning %q does not say what is at risk", d)
	}
	_, diags = Parse("bad.hcl", []byte(strings.Replace(src, `"none"`, `"password"`, 1)))
	if !diags.HasErrors() {
		t.Error("auth = \"password\" accepted")
	}
}
