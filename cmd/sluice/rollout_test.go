package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/hcl/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/natstest"
	"github.com/sluice-dev/sluice/internal/registrytest"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// fleetAgent is one agent process of the fleet test.
type fleetAgent struct {
	name   string
	config string
	cmd    *exec.Cmd
	logs   *testutil.SyncBuffer
	done   chan error // the process's exit
}

// start runs the agent process.
func (a *fleetAgent) start(t *testing.T) {
	t.Helper()
	a.cmd = exec.Command(sluiceBin, "agent", "--config", a.config)
	a.cmd.Stdout, a.cmd.Stderr = a.logs, a.logs
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a.done = make(chan error, 1)
	go func(cmd *exec.Cmd, done chan error) { done <- cmd.Wait() }(a.cmd, a.done)
}

// TestFleetRollout is the fleet test: a 3-node NATS cluster on
// loopback (in-process servers with routes, clustered JetStream), five
// agent processes (distinct names; two in the group "web") publishing real
// trace_open events of a load process into one R3 stream, and `sluice
// rollout` rolling a new stage version out with one KV put while the
// events flow and one NATS node is killed and restarted. The rollout
// command reports convergence and exits 0, every agent runs the new
// version and its last events carry it, and every agent's events are in
// the stream exactly once (sequence numbers 1..n, each once, one per open
// of the load). `rollout status` agrees; `rollout undo` goes back.
func TestFleetRollout(t *testing.T) {
	testutil.RequireBPF(t)
	const agents = 5
	cluster := natstest.StartCluster(t, 3)
	urls := cluster.URLs()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SLUICE", Subjects: []string{"sluice.events.>"}, Replicas: 3,
		Duplicates: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	ctl := &config.ControlNATS{Bucket: config.DefaultControlBucket, StatusBucket: config.DefaultControlBucket + config.StatusBucketSuffix, Replicas: 3}
	_, status, err := agent.OpenControlBuckets(ctx, js, ctl)
	if err != nil {
		t.Fatal(err)
	}

	reg := registrytest.Start(t, registrytest.Options{})
	patchable, err := os.ReadFile(filepath.Join("..", "..", "wasmstages", "testdata", "tag_patchable.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	var digests []string
	for v := 1; v <= 2; v++ {
		m, err := testutil.PatchTagVersion(patchable, byte(v))
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, reg.PushStage(t, fmt.Sprintf("%s/stages/tag:v%d", reg.Host, v), m, nil).String())
	}

	load := testutil.StartOpenLoop(t, 1000)
	var fleet []*fleetAgent
	for i := range agents {
		a := &fleetAgent{name: fmt.Sprintf("fleet-%d.lan", i), logs: &testutil.SyncBuffer{}}
		group := ""
		if i < 2 {
			group = `group = "web"`
		}
		dir := t.TempDir()
		cfg := filepath.Join(dir, "agent.hcl")
		os.WriteFile(cfg, []byte(fmt.Sprintf(`
agent {
  name           = %q
  data_dir       = %q
  shutdown_grace = "30s"
  %s
  control {
    nats { url = %q }
  }
}
source "gadget" "open" {
  gadget = "trace_open"
  params = { target_pid = %d }
}
stage "wasm" "tag" { module = "oci://%s/stages/tag:v1" }
sink "nats" "bus" {
  url     = %q
  subject = "sluice.events.{host}.{source}"
  jetstream {
    stream      = "SLUICE"
    ack_timeout = "2s"
  }
}
pipeline "p" {
  sources = [source.gadget.open]
  stages  = [stage.wasm.tag]
  sinks   = [sink.nats.bus]
  queue { when_full = "block" }
}
`, a.name, dir, group, urls, load.Pid, reg.Host, urls)), 0o644)
		a.config = cfg
		a.start(t)
		t.Cleanup(func() {
			a.cmd.Process.Kill()
			<-a.done
		})
		fleet = append(fleet, a)
	}
	logs := func() string {
		var b strings.Builder
		for _, a := range fleet {
			fmt.Fprintf(&b, "--- %s\n%s", a.name, a.logs.String())
		}
		return b.String()
	}
	records := func() map[string]agent.StatusRecord {
		out := map[string]agent.StatusRecord{}
		for _, a := range fleet {
			e, err := status.Get(ctx, agent.StatusKey("tag", a.name))
			if err != nil {
				continue
			}
			var rec agent.StatusRecord
			if json.Unmarshal(e.Value(), &rec) == nil {
				out[a.name] = rec
			}
		}
		return out
	}
	waitFor := func(what string, timeout time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within %s; agent logs:\n%s", what, timeout, logs())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Every agent reports v1 once its gadget is attached. On a loaded
	// machine the cluster may answer an agent's start-up requests too late
	// (the NATS sink then refuses to start): it is started again, as its
	// service manager would.
	restarts := 0
	waitFor("status of v1 from every agent", 90*time.Second, func() bool {
		recs := records()
		ready := true
		for _, a := range fleet {
			select {
			case err := <-a.done:
				if restarts++; restarts > 3 {
					t.Fatalf("%s exited during start-up (%v), too often; agent logs:\n%s", a.name, err, logs())
				}
				t.Logf("%s exited during start-up (%v); starting it again", a.name, err)
				a.start(t)
			default:
			}
			if recs[a.name].Digest != digests[0] || recs[a.name].State != agent.StageServing {
				ready = false
			}
		}
		return ready
	})
	if err := load.Go(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // events flow before the rollout

	rollout := exec.Command(sluiceBin, "rollout", "tag", reg.Host+"/stages/tag:v2", "--server", urls, "--wait", "90s")
	var rolloutOut bytes.Buffer
	rollout.Stdout, rollout.Stderr = &rolloutOut, &rolloutOut
	if err := rollout.Start(); err != nil {
		t.Fatal(err)
	}
	// During the rollout the leader of the events' stream goes down (a
	// leader election while every agent publishes) and comes back.
	leader := 1
	if si, err := js.Stream(ctx, "SLUICE"); err == nil {
		if info, err := si.Info(ctx); err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
			fmt.Sscanf(info.Cluster.Leader, "n%d", &leader)
			leader--
		}
	}
	cluster.Kill(leader)
	time.Sleep(2 * time.Second)
	cluster.Restart(t, leader)
	if err := rollout.Wait(); err != nil {
		t.Fatalf("sluice rollout: %v; output:\n%s\nagent logs:\n%s", err, rolloutOut.String(), logs())
	}
	if !strings.Contains(rolloutOut.String(), fmt.Sprintf("rollout of tag complete: %d agents run %s", agents, digests[1])) {
		t.Errorf("sluice rollout did not report the convergence of %d agents; output:\n%s", agents, rolloutOut.String())
	}
	for name, rec := range records() {
		if rec.Digest != digests[1] || rec.DesiredFrom != "kv:tag" || rec.State != agent.StageServing {
			t.Errorf("%s: %+v; want v2 from kv:tag", name, rec)
		}
	}
	out, _, code := runSluice(t, "rollout", "status", "tag", "--server", urls, "--wait", "0")
	if code != 0 || !strings.Contains(out, "complete: 5 agents") {
		t.Errorf("rollout status: exit %d, output:\n%s", code, out)
	}
	time.Sleep(time.Second) // events flow after the rollout

	opens, _, err := load.Stop()
	if err != nil {
		t.Fatal(err)
	}
	// What the node's loss made the agents spool is replayed: wait until
	// every agent's subject holds at least one message per open and the
	// stream stops growing, then stop the agents.
	stream, err := js.Stream(ctx, "SLUICE")
	if err != nil {
		t.Fatal(err)
	}
	var lastTotal uint64
	stable := 0
	waitFor("every agent's events in the stream", 120*time.Second, func() bool {
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter("sluice.events.>"))
		if err != nil {
			return false
		}
		for _, a := range fleet {
			// The sink escapes the host's dots into its subject token.
			if info.State.Subjects["sluice.events."+strings.ReplaceAll(a.name, ".", "%2E")+".open"] < opens {
				stable = 0
				return false
			}
		}
		if info.State.Msgs == lastTotal {
			stable++
		} else {
			stable, lastTotal = 0, info.State.Msgs
		}
		return stable >= 10 // a second without a new message
	})
	for _, a := range fleet {
		a.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, a := range fleet {
		if err := <-a.done; err != nil {
			t.Errorf("%s: exit after SIGTERM: %v", a.name, err)
		}
		a.done <- nil // for the cleanup
	}
	if t.Failed() {
		t.Fatalf("agent logs:\n%s", logs())
	}

	// The stream: per agent, sequence numbers 1..n each once, one event
	// per open, and the last events processed by v2.
	type perAgent struct {
		seqs      map[uint64]int
		maxSeq    uint64
		loop      uint64
		lastV     int64
		lastSeqV2 bool
	}
	hosts := map[string]*perAgent{}
	for _, a := range fleet {
		hosts[a.name] = &perAgent{seqs: map[uint64]int{}}
	}
	st, err := js.Stream(ctx, "SLUICE")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	readBy := time.Now().Add(60 * time.Second)
	for n := uint64(0); n < info.State.Msgs; {
		batch, err := cons.Fetch(int(min(1000, info.State.Msgs-n)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			n++
			got++
			ev := m.Data()
			str := func(k string) string {
				raw, _ := codec.Lookup(ev, k)
				s, _, _ := codec.ReadString(raw)
				return string(s)
			}
			if str("type") == "loss" {
				t.Errorf("loss record in the stream: %s", m.Subject())
				continue
			}
			h := hosts[str("host")]
			if h == nil {
				t.Fatalf("an event of an unknown host %q", str("host"))
			}
			raw, _ := codec.Lookup(ev, "seq")
			seq, _, _ := codec.ReadUint(raw)
			h.seqs[seq]++
			if seq > h.maxSeq {
				h.maxSeq = seq
				raw, _ = codec.Lookup(ev, "stage_version")
				h.lastV, _, _ = codec.ReadInt(raw)
			}
			if str("path") == testutil.OpenLoopPath {
				h.loop++
			}
		}
		if got == 0 && time.Now().After(readBy) {
			t.Fatalf("read %d of %d messages of the stream (%v)", n, info.State.Msgs, batch.Error())
		}
	}
	for name, h := range hosts {
		for seq, n := range h.seqs {
			if n != 1 {
				t.Errorf("%s: seq %d is in the stream %d times", name, seq, n)
			}
		}
		if uint64(len(h.seqs)) != h.maxSeq {
			t.Errorf("%s: %d distinct sequence numbers up to %d: some are missing", name, len(h.seqs), h.maxSeq)
		}
		if h.loop != opens {
			t.Errorf("%s: %d events of the load's opens in the stream; it made %d", name, h.loop, opens)
		}
		if h.lastV != 2 {
			t.Errorf("%s: the last event was processed by version %d, want 2", name, h.lastV)
		}
	}
	t.Logf("stream: %d messages from %d agents; the load made %d opens; node n%d (the stream's leader) was killed during the rollout", info.State.Msgs, len(hosts), opens, leader+1)

	// Undo: the key's value before was none, so the agents return to
	// their config (v1).
	out, _, code = runSluice(t, "rollout", "undo", "tag", "--server", urls, "--wait", "0")
	if code != 0 || !strings.Contains(out, "tag deleted") {
		t.Errorf("rollout undo: exit %d, output:\n%s", code, out)
	}
}

// TestRolloutUndo: undo puts back the value before the current one, and
// deletes the key when there was none; a key never set has nothing to
// undo; a value that names no image is refused before anything is
// written.
func TestRolloutUndo(t *testing.T) {
	srv := natstest.StartServer(t, true)
	ctx := context.Background()
	ctl := config.ControlNATS{URL: srv.URL(0), Bucket: "b", StatusBucket: "b-status", Replicas: 1}
	run := func(action, ref string) (string, error) {
		var out bytes.Buffer
		err := runRollout(ctx, rolloutOptions{Action: action, Stage: "f", Ref: ref, Group: "web", Control: ctl}, &out)
		return out.String(), err
	}
	if _, err := run("undo", ""); err == nil || !strings.Contains(err.Error(), "never set") {
		t.Errorf("undo of a key never set: %v", err)
	}
	if _, err := run("set", "./f.wasm"); err == nil || !strings.Contains(err.Error(), "neither an image reference") {
		t.Errorf("a file path as REF: %v", err)
	}
	for _, ref := range []string{"reg.lan/stages/f:v1", "reg.lan/stages/f:v2"} {
		if out, err := run("set", ref); err != nil || !strings.Contains(out, "web.f = "+ref) {
			t.Fatalf("set %s: %q, %v", ref, out, err)
		}
	}
	nc, _ := nats.Connect(srv.URL(0))
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	value := func() string {
		e, err := kv.Get(ctx, "web.f")
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(e.Value())
	}
	if out, err := run("undo", ""); err != nil || value() != "reg.lan/stages/f:v1" || !strings.Contains(out, "the value before the last") {
		t.Errorf("undo: %q, %v; the key holds %s", out, err, value())
	}
	// Undo again: back to v2 (the value before the last is v2 now).
	if _, err := run("undo", ""); err != nil || value() != "reg.lan/stages/f:v2" {
		t.Errorf("second undo: %v; the key holds %s", err, value())
	}
	kv.Purge(ctx, "web.f")
	run("set", "reg.lan/stages/f:v3")
	if out, err := run("undo", ""); err != nil || !strings.Contains(out, "web.f deleted") {
		t.Errorf("undo of the first value after a purge: %q, %v", out, err)
	}
	if _, err := run("undo", ""); err == nil || !strings.Contains(err.Error(), "is deleted") {
		t.Errorf("undo of a deleted key: %v", err)
	}
}

func TestRolloutProgress(t *testing.T) {
	now := time.Now()
	rec := func(name, group, from string, rev uint64, state, digest string) agent.StatusRecord {
		return agent.StatusRecord{Agent: name, Group: group, Updated: now, StageStatus: agent.StageStatus{
			Stage: "f", DesiredFrom: from, DesiredRevision: rev, State: state, Digest: digest}}
	}
	all := rolloutTarget{stage: "f", key: "f", rev: 5}
	web := rolloutTarget{stage: "f", group: "web", key: "web.f", rev: 7}
	gone := rec("old", "", "kv:f", 5, agent.StageServing, "sha256:a")
	gone.Updated = now.Add(-2 * agent.StatusStaleAfter)
	for _, c := range []struct {
		name      string
		target    rolloutTarget
		recs      []agent.StatusRecord
		states    string // per agent, sorted by name
		converged bool
	}{
		{"all done", all, []agent.StatusRecord{
			rec("a", "", "kv:f", 5, agent.StageServing, "sha256:a"),
			rec("b", "web", "kv:f", 6, agent.StageServing, "sha256:a"),
		}, "a=done b=done", true},
		{"an older revision is pending", all, []agent.StatusRecord{
			rec("a", "", "kv:f", 5, agent.StageServing, "sha256:a"),
			rec("b", "", "kv:f", 4, agent.StageServing, "sha256:old"),
		}, "a=done b=pending", false},
		{"the new revision still loading", all, []agent.StatusRecord{
			rec("a", "", "kv:f", 5, agent.StagePending, "sha256:old"),
		}, "a=pending", false},
		{"a failure", all, []agent.StatusRecord{
			rec("a", "", "kv:f", 5, agent.StageServing, "sha256:a"),
			rec("b", "", "kv:f", 5, agent.StageFailed, "sha256:old"),
			rec("c", "", "kv:f", 5, agent.StageRolledBack, "sha256:old"),
		}, "a=done b=failed c=failed", false},
		{"digests disagree (a tag moved)", all, []agent.StatusRecord{
			rec("a", "", "kv:f", 5, agent.StageServing, "sha256:a"),
			rec("b", "", "kv:f", 5, agent.StageServing, "sha256:b"),
		}, "a=done b=done", false},
		{"a group's key wins; gone agents do not count", all, []agent.StatusRecord{
			rec("a", "", "kv:f", 5, agent.StageServing, "sha256:a"),
			rec("w", "web", "kv:web.f", 9, agent.StageServing, "sha256:w"),
			gone,
		}, "a=done old=gone w=overridden", true},
		{"a group's rollout looks at its agents only", web, []agent.StatusRecord{
			rec("a", "", "kv:f", 5, agent.StageServing, "sha256:a"),
			rec("w", "web", "kv:web.f", 7, agent.StageServing, "sha256:w"),
		}, "w=done", true},
		{"nobody", all, nil, "", false},
		{"a deleted key: agents that left it", rolloutTarget{stage: "f", key: "f", deleted: true}, []agent.StatusRecord{
			rec("a", "", "config", 0, agent.StageServing, "sha256:c"),
			rec("b", "", "kv:f", 5, agent.StageServing, "sha256:a"),
		}, "a=done b=pending", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := map[string]agent.StatusRecord{}
			for _, r := range c.recs {
				m["f."+r.Agent] = r
			}
			rows, _, _, converged := rolloutProgress(c.target, m, now)
			var states []string
			for _, r := range rows {
				states = append(states, r.rec.Agent+"="+r.state)
			}
			if got := strings.Join(states, " "); got != c.states || converged != c.converged {
				t.Errorf("states %q, converged %t; want %q, %t", got, converged, c.states, c.converged)
			}
		})
	}
}

// TestRolloutConnectionSettings: the control connection comes from the
// defaults and $NATS_URL, or from an agent config's control block (and its
// agent group), with the flags on top: an authentication flag replaces the
// config's method, a TLS flag one file, --bucket names the status bucket
// too.
func TestRolloutConnectionSettings(t *testing.T) {
	dir := t.TempDir()
	agentConfig := filepath.Join(dir, "agent.hcl")
	os.WriteFile(agentConfig, []byte(`
agent {
  group = "web"
  control {
    nats {
      url           = "nats://nats-1.lan:4222"
      bucket        = "stages"
      status_bucket = "stages-seen"
      replicas      = 3
      creds_file    = "/etc/sluice/agent.creds"
      tls {
        ca_file   = "/etc/sluice/ca.pem"
        cert_file = "/etc/sluice/agent.pem"
        key_file  = "/etc/sluice/agent.key"
      }
    }
  }
}
source "gadget" "exec" { gadget = "trace_exec" }
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
}
`), 0o644)
	noControl := filepath.Join(dir, "plain.hcl")
	os.WriteFile(noControl, []byte(`
source "gadget" "exec" { gadget = "trace_exec" }
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
}
`), 0o644)
	fromConfig := config.ControlNATS{URL: "nats://nats-1.lan:4222", Bucket: "stages", StatusBucket: "stages-seen", Replicas: 3,
		NATSAuth: config.NATSAuth{CredsFile: "/etc/sluice/agent.creds", CAFile: "/etc/sluice/ca.pem", CertFile: "/etc/sluice/agent.pem", KeyFile: "/etc/sluice/agent.key"}}
	for _, c := range []struct {
		name    string
		env     string // $NATS_URL
		args    []string
		want    func(*config.ControlNATS)
		group   string
		wantErr string
	}{
		{name: "defaults", want: func(*config.ControlNATS) {}},
		{name: "NATS_URL", env: "nats://env.lan:4222", want: func(c *config.ControlNATS) { c.URL = "nats://env.lan:4222" }},
		{name: "flags", args: []string{"-s", "nats://a:4222", "--token", "t", "--bucket", "b", "--replicas", "2", "-g", "db"}, group: "db",
			want: func(c *config.ControlNATS) {
				c.URL, c.Token, c.Bucket, c.StatusBucket, c.Replicas = "nats://a:4222", "t", "b", "b-status", 2
			}},
		{name: "config", env: "nats://env.lan:4222", args: []string{"--config", agentConfig}, group: "web",
			want: func(c *config.ControlNATS) { *c = fromConfig }},
		{name: "config and flags", args: []string{"-c", agentConfig, "-s", "nats://b:4222", "--user", "ops", "--password", "pw", "--tls-ca", "/ca2.pem", "--bucket", "b2", "--group", ""},
			want: func(c *config.ControlNATS) {
				*c = fromConfig
				c.URL, c.CredsFile, c.User, c.Password, c.CAFile, c.Bucket, c.StatusBucket = "nats://b:4222", "", "ops", "pw", "/ca2.pem", "b2", "b2-status"
			}},
		{name: "config without a control block", args: []string{"--config", noControl}, wantErr: "has no control block"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("NATS_URL", c.env)
			t.Setenv("NATS_TOKEN", "")
			var f rolloutFlags
			cmd := &cobra.Command{Use: "rollout"}
			f.register(cmd)
			if err := cmd.ParseFlags(c.args); err != nil {
				t.Fatal(err)
			}
			got, group, err := f.control(cmd)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := config.ControlNATS{URL: config.DefaultNATSURL, Bucket: config.DefaultControlBucket,
				StatusBucket: config.DefaultControlBucket + config.StatusBucketSuffix, Replicas: 1}
			c.want(&want)
			if diff := cmp.Diff(want, got, cmpopts.IgnoreTypes(hcl.Range{})); diff != "" || group != c.group {
				t.Errorf("group %q, want %q; control (-want +got):\n%s", group, c.group, diff)
			}
		})
	}
}
