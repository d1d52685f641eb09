package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/opencontainers/go-digest"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/natstest"
	"github.com/sluice-dev/sluice/internal/registrytest"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/oci"
)

// TestControlBucket steers a running agent through its control bucket: it
// starts while the bus is down and runs its config; once the bus is up a
// put of the stage's key rolls a version out, the group's key wins over
// it, deleting keys returns to the stage's key and then to the config, a
// value that names nothing is refused, and a bus outage changes nothing
// that runs until a change made after it comes back. The agent publishes
// every step to the status bucket, and events flow throughout.
func TestControlBucket(t *testing.T) {
	testutil.RequireBPF(t)
	reg := registrytest.Start(t, registrytest.Options{})
	repo := reg.Host + "/stages/tag"
	d := map[int]digest.Digest{}
	for v := 1; v <= 3; v++ {
		d[v] = reg.PushStage(t, fmt.Sprintf("%s:v%d", repo, v), tagModule(t, v), nil)
	}
	bus := natstest.StartServer(t, false) // down when the agent starts
	ta := startImageAgent(t, fmt.Sprintf(`
agent {
  name           = "ctl-host.example"
  data_dir       = %q
  shutdown_grace = "5s"
  group          = "web"
  control {
    nats { url = %q }
  }
}
source "gadget" "exec" { gadget = "trace_exec" }
stage "wasm" "tag" { module = "oci://%s:v1" }
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.exec]
  stages  = [stage.wasm.tag]
  sinks   = [sink.stdout.out]
  queue { when_full = "drop_oldest" }
}
`, t.TempDir(), bus.URL(0), repo))
	defer ta.stop()
	serves := func(v int) {
		t.Helper()
		marker := fmt.Sprintf("sluice-control-%d", rand.Uint32())
		want := fmt.Sprintf(`"stage_version":%d`, v)
		ta.waitForOutput(fmt.Sprintf("an exec processed by version %d", v), 20*time.Second,
			func() { exec.Command("/bin/true", marker).Run() },
			func(out string) bool {
				for _, line := range strings.Split(out, "\n") {
					if strings.Contains(line, marker) && strings.Contains(line, want) {
						return true
					}
				}
				return false
			})
	}
	runs := func(v int, from string) {
		t.Helper()
		ta.waitFor(fmt.Sprintf("version %d from %s", v, from), 20*time.Second, func() {}, func() bool {
			st := ta.stageStatus("tag")
			return st.Digest == d[v].String() && st.DesiredFrom == from && st.State == StageServing
		})
		serves(v)
	}
	runs(1, "config")

	bus.Restart(t, 0)
	nc, err := nats.Connect(bus.URL(0), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	var control, status jetstream.KeyValue
	ta.waitFor("the agent to create the buckets", 20*time.Second, func() {}, func() bool {
		control, status, err = OpenControlBuckets(ctx, js, &config.ControlNATS{Bucket: config.DefaultControlBucket,
			StatusBucket: config.DefaultControlBucket + config.StatusBucketSuffix, Replicas: 1})
		return err == nil
	})
	record := func() StatusRecord {
		t.Helper()
		var rec StatusRecord
		e, err := status.Get(ctx, StatusKey("tag", "ctl-host.example"))
		if err == nil {
			err = json.Unmarshal(e.Value(), &rec)
		}
		if err != nil {
			t.Fatalf("the status entry: %v", err)
		}
		return rec
	}
	put := func(key, value string) uint64 {
		t.Helper()
		rev, err := control.PutString(ctx, key, value)
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}

	rev := put("tag", repo+":v2")
	runs(2, "kv:tag")
	ta.waitFor("the status entry of v2", 10*time.Second, func() {}, func() bool {
		rec := record()
		return rec.Digest == d[2].String() && rec.DesiredRevision == rev && rec.State == StageServing
	})
	if rec := record(); rec.Agent != "ctl-host.example" || rec.Group != "web" || rec.Desired != repo+":v2" || rec.LastSwap.IsZero() {
		t.Errorf("status record = %+v", rec)
	}
	put("web.tag", "oci://"+repo+"@"+d[3].String())
	runs(3, "kv:web.tag")
	if err := control.Delete(ctx, "web.tag"); err != nil {
		t.Fatal(err)
	}
	runs(2, "kv:tag")
	if err := control.Delete(ctx, "tag"); err != nil {
		t.Fatal(err)
	}
	runs(1, "config")

	// A bare digest names a version of the config's repository; a value
	// that names nothing is refused and v1 keeps serving.
	put("tag", d[3].String())
	runs(3, "kv:tag")
	put("tag", "./not-an-image.wasm")
	ta.waitFor("the refusal", 10*time.Second, func() {}, func() bool {
		st := ta.stageStatus("tag")
		return st.State == StageFailed && st.Result == ReloadBadRef
	})
	serves(3)

	// An outage: nothing changes, events flow; a change made once the bus
	// is back is applied.
	bus.Kill(0)
	serves(3)
	bus.Restart(t, 0)
	ta.waitFor("the key to be writable again", 20*time.Second, func() {}, func() bool {
		_, err := control.PutString(ctx, "tag", repo+":v1")
		return err == nil
	})
	runs(1, "kv:tag")
	ta.waitFor("the status after the outage", 20*time.Second, func() {}, func() bool { return record().Digest == d[1].String() })
}

func TestControlKeys(t *testing.T) {
	for _, c := range []struct{ group, stage, agent, control, status string }{
		{"", "no_shells", "node-a", "no_shells", "no_shells.node-a"},
		{"web", "no_shells", "node-a.example.com", "web.no_shells", "no_shells.node-a=2Eexample=2Ecom"},
		{"web", "x", "a b=c", "web.x", "x.a=20b=3Dc"},
	} {
		if got := ControlKey(c.group, c.stage); got != c.control {
			t.Errorf("ControlKey(%q, %q) = %q, want %q", c.group, c.stage, got, c.control)
		}
		if got := StatusKey(c.stage, c.agent); got != c.status {
			t.Errorf("StatusKey(%q, %q) = %q, want %q", c.stage, c.agent, got, c.status)
		}
	}
}

func TestParseOverride(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	ociCfg := &stageFollower{cfgSpec: moduleSpec{kind: moduleOCI, value: "oci://reg.lan/stages/f:v1", ref: oci.Reference{Registry: "reg.lan", Repository: "stages/f", Tag: "v1"}}}
	fileCfg := &stageFollower{cfgSpec: moduleSpec{kind: moduleFile, value: "./f.wasm"}}
	for _, c := range []struct {
		f       *stageFollower
		value   string
		want    string // the reference, or the error's text
		wantErr bool
	}{
		{ociCfg, "reg.lan/stages/f:v2\n", "reg.lan/stages/f:v2", false},
		{ociCfg, "oci://other.lan/x@" + d, "other.lan/x@" + d, false},
		{ociCfg, d, "reg.lan/stages/f@" + d, false},
		{fileCfg, d, "names no image repository", true},
		{ociCfg, "sha256:12", "sha256:12", true},
		{ociCfg, "drop-comm", "neither an image reference", true},
		{ociCfg, "", "neither an image reference", true},
	} {
		s := c.f.parseOverride(c.value, "k", 7)
		if s.from != "kv:k" || s.revision != 7 {
			t.Errorf("%q: from %q revision %d", c.value, s.from, s.revision)
		}
		if c.wantErr {
			if s.err == nil || !strings.Contains(s.err.Error(), c.want) {
				t.Errorf("%q: error %v, want one containing %q", c.value, s.err, c.want)
			}
			continue
		}
		if s.err != nil || s.ref.String() != c.want {
			t.Errorf("%q: %s, %v; want %s", c.value, s.ref, s.err, c.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	f := &stageFollower{}
	var got []time.Duration
	for n := range 8 {
		f.transient = n
		got = append(got, f.backoff(200*time.Millisecond))
	}
	want := []time.Duration{200, 400, 800, 1600, 3200, 6400, 6400, 6400}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("backoff after 0..7 failures = %v, want %v ms", got, want)
		}
	}
	f.transient = 5
	if d := f.backoff(time.Minute); d != maxBackoff {
		t.Errorf("a one-minute poll backs off to %s, want the cap of %s", d, maxBackoff)
	}
	if d := f.backoff(10 * time.Minute); d != 10*time.Minute {
		t.Errorf("a poll longer than the cap backs off to %s, want the poll", d)
	}
}

// TestStageVersionAcrossReloads: a config reload keeps what the control
// bucket rolled out. A stage rebuilt by a reload (its timeout changed)
// starts on the rolled-out version, not the config's; a stage a reload
// adds gets a follower and a status entry, and one it removes loses both.
func TestStageVersionAcrossReloads(t *testing.T) {
	testutil.RequireBPF(t)
	reg := registrytest.Start(t, registrytest.Options{})
	repo := reg.Host + "/stages/tag"
	d1 := reg.PushStage(t, repo+":v1", tagModule(t, 1), nil)
	d2 := reg.PushStage(t, repo+":v2", tagModule(t, 2), nil)
	bus := natstest.StartServer(t, true)
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.hcl")
	write := func(timeout string, second bool) {
		t.Helper()
		extra, stages := "", "[stage.wasm.tag]"
		if second {
			extra = fmt.Sprintf(`stage "wasm" "tag2" { module = "oci://%s:v1" }`, repo)
			stages = "[stage.wasm.tag, stage.wasm.tag2]"
		}
		src := fmt.Sprintf(`
agent {
  name           = "reload-host"
  data_dir       = %q
  shutdown_grace = "5s"
  control {
    nats { url = %q }
  }
}
source "gadget" "exec" { gadget = "trace_exec" }
stage "wasm" "tag" {
  module  = "oci://%s:v1"
  timeout = %q
}
%s
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.exec]
  stages  = %s
  sinks   = [sink.stdout.out]
  queue { when_full = "drop_oldest" }
}
`, filepath.Join(dir, "data"), bus.URL(0), repo, timeout, extra, stages)
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("100ms", false)
	f, diags := config.NewParser().ParseFile(path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	images, diags := FetchImages(context.Background(), f, FetchOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ta := startAgent(t, f, Options{Images: images, Load: LoadFile(path, FetchOptions{})})
	defer ta.stop()
	reload := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := ta.a.Reload(ctx)
		if err != nil || !res.OK {
			t.Fatalf("reload: %+v, %v", res, err)
		}
	}
	runs := func(name string, d digest.Digest) bool {
		instances := ta.a.stagesNamed(name)
		for _, s := range instances {
			if s.Running().Digest != d.String() {
				return false
			}
		}
		return len(instances) > 0
	}

	nc, err := nats.Connect(bus.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	var control, status jetstream.KeyValue
	ta.waitFor("the agent's buckets", 20*time.Second, func() {}, func() bool {
		control, status, err = OpenControlBuckets(ctx, js, &config.ControlNATS{Bucket: config.DefaultControlBucket,
			StatusBucket: config.DefaultControlBucket + config.StatusBucketSuffix, Replicas: 1})
		return err == nil
	})
	if _, err := control.PutString(ctx, "tag", repo+":v2"); err != nil {
		t.Fatal(err)
	}
	ta.waitFor("v2 from the bucket", 20*time.Second, func() {}, func() bool { return runs("tag", d2) })

	// The stage's timeout changes: the reload builds a new instance, which
	// starts on v2.
	write("200ms", false)
	reload()
	if !runs("tag", d2) {
		t.Errorf("the instance the reload built runs %v, want v2", ta.a.stagesNamed("tag")[0].Running())
	}
	// A second stage comes and goes with its follower and status entry.
	write("200ms", true)
	reload()
	ta.waitFor("tag2's status entry", 20*time.Second, func() {}, func() bool {
		_, err := status.Get(ctx, StatusKey("tag2", "reload-host"))
		return err == nil && runs("tag2", d1)
	})
	write("200ms", false)
	reload()
	ta.waitFor("tag2's status entry gone", 20*time.Second, func() {}, func() bool {
		_, err := status.Get(ctx, StatusKey("tag2", "reload-host"))
		return err != nil
	})
	if st := ta.a.StageStatus(); len(st) != 1 || st[0].Stage != "tag" || st[0].Digest != d2.String() {
		t.Errorf("stage status after tag2 went: %+v", st)
	}
	if ta.reg.Snapshot().Get(MetricStageInfo, "component", "stage", "name", "tag2", "digest", d1.String(), "ref", "oci://"+repo+":v1") != 0 {
		t.Error("sluice_stage_info still names tag2")
	}
}
