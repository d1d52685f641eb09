package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/registrytest"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/oci/sign"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/wasmstages"
)

// tagModule returns the test guest that stamps version v into every event
// (wasmstages/testdata/tag_patchable.wasm, patched).
func tagModule(t testing.TB, v int) []byte {
	t.Helper()
	b, err := os.ReadFile(testGuest(t, "tag_patchable"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := testutil.PatchTagVersion(b, byte(v))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// startImageAgent fetches the images of the config src and runs the agent.
func startImageAgent(t *testing.T, src string) *testAgent {
	t.Helper()
	f := parseFile(t, t.TempDir(), src)
	images, diags := FetchImages(context.Background(), f, FetchOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return startAgent(t, f, Options{Images: images})
}

// stageStatus returns the agent's status of one stage.
func (ta *testAgent) stageStatus(name string) StageStatus {
	for _, s := range ta.a.StageStatus() {
		if s.Stage == name {
			return s
		}
	}
	ta.t.Fatalf("no status for stage %q", name)
	return StageStatus{}
}

// TestStageFollowsTagUnderLoad is the acceptance test of a hot
// swap. A child process opens a missing file 30,000 times a second (real
// trace_open events, numbered per source); the agent runs them through a
// stage that follows an OCI tag, polled every 200ms, into a msgpack file.
// Twenty versions are pushed to the tag one after the other, each stamping
// its number into the events it processes (and the agent stamping each
// event with the digest of the version that processed it). The file holds
// every sequence number exactly once, as many as the child made opens;
// versions only move forward along the sequence; the number and the
// stamped digest of each event agree; every version served; and each swap
// landed at the first or second poll after its push.
func TestStageFollowsTagUnderLoad(t *testing.T) {
	testutil.RequireBPF(t)
	const versions, rate = 20, 30000
	reg := registrytest.Start(t, registrytest.Options{})
	ref := reg.Host + "/stages/tag:stable"
	digests := map[string]int{}
	modules := make([][]byte, versions+1)
	for v := 1; v <= versions; v++ {
		modules[v] = tagModule(t, v)
	}
	digests[reg.PushStage(t, ref, modules[1], nil).String()] = 1

	load := testutil.StartOpenLoop(t, rate)
	dataDir := t.TempDir()
	ta := startImageAgent(t, fmt.Sprintf(`
agent {
  name           = "swap-host"
  data_dir       = %q
  shutdown_grace = "20s"
}
source "gadget" "open" {
  gadget      = "trace_open"
  params      = { target_pid = %d }
  buffer_size = "64MiB"
}
stage "wasm" "tag" {
  module        = "oci://%s"
  stamp_version = true
  # Not the default 100ms: on a machine loaded enough to starve a call
  # that long, a timeout would pass its batch on unprocessed (on_error),
  # which the test would take for a swap's fault.
  timeout       = "10s"
  reload { poll = "200ms" }
}
sink "file" "out" {
  path   = "events.msgpack"
  format = "msgpack"
}
pipeline "p" {
  sources = [source.gadget.open]
  stages  = [stage.wasm.tag]
  sinks   = [sink.file.out]
  queue { when_full = "block" }
}
`, dataDir, load.Pid, ref))
	// The stages report their version once the gadgets are attached: from
	// then on every open is traced.
	ta.waitFor("the agent to start", 30*time.Second, func() {}, func() bool { return ta.stageStatus("tag").Digest != "" })
	if err := load.Go(); err != nil {
		t.Fatal(err)
	}
	checks := func() float64 {
		return ta.reg.Snapshot().Get(MetricStageVersionChecks, "component", "stage", "name", "tag")
	}
	var took, landed []time.Duration
	for v := 2; v <= versions; v++ {
		before := checks()
		pushed := time.Now()
		d := reg.PushStage(t, ref, modules[v], nil).String()
		digests[d] = v
		afterPush := checks()
		ta.waitFor(fmt.Sprintf("version %d serving", v), 30*time.Second, func() {}, func() bool { return ta.stageStatus("tag").Digest == d })
		st := ta.stageStatus("tag")
		took, landed = append(took, st.SwapTook), append(landed, st.LastSwap.Sub(pushed))
		// The polls that began after the push completed: the first saw
		// the new digest, unless one in flight at the push still
		// answered with the old one.
		if polls := checks() - afterPush; polls > 2 {
			t.Errorf("version %d: swapped in after %v polls (%v during the push); want it within 2 poll intervals", v, polls, afterPush-before)
		}
	}
	// The last version must process events too: keep the load on until
	// a batch has run since it began serving.
	batches := func() float64 {
		return ta.reg.Snapshot().Get(pipeline.MetricStageBatches, "component", "stage", "name", "tag")
	}
	servingSince := batches()
	ta.waitFor(fmt.Sprintf("a batch through version %d", versions), 30*time.Second, func() {}, func() bool { return batches() > servingSince })
	opens, ran, err := load.Stop()
	if err != nil {
		t.Fatal(err)
	}
	ta.stop()
	t.Logf("load: %d opens in %s (%.0f/s); digest seen -> serving: %v; push done -> serving: %v", opens, ran.Round(time.Millisecond), float64(opens)/ran.Seconds(), took, landed)
	if r := float64(opens) / ran.Seconds(); r < 20000 {
		t.Errorf("the load was %.0f events/s, below the 20,000/s the test must hold", r)
	}
	// Events the kernel could not hand over (a machine so loaded that the
	// reader fell 64 MiB behind) never reach a stage: they are counted,
	// and reported in the stream, but say nothing about a swap. What a
	// swap could lose or duplicate is after the reader, where every
	// sequence number must arrive once.
	kernelLost := uint64(ta.reg.Snapshot().Get(pipeline.MetricDropped, "component", "source", "name", "open", "reason", pipeline.ReasonKernel))
	if kernelLost > 0 {
		t.Logf("%d events were lost in the kernel (the machine is loaded); they are left out of the count", kernelLost)
	}

	// A failed call passes its batch on unprocessed: say so before the
	// events show it.
	if n := ta.reg.Component("stage", "tag").Errors.Value(); n > 0 {
		t.Errorf("%d stage calls failed (their batches passed on unprocessed)", n)
	}
	f, err := os.Open(filepath.Join(dataDir, "events.msgpack"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := msgpack.NewDecoder(bufio.NewReader(f))
	dec.UseLooseInterfaceDecoding(true)
	seen := map[uint64]bool{}
	served := map[int]int{}
	loopEvents := uint64(0)
	var lastSeq uint64
	lastVersion := 0
	stampKey := wasmstages.StampKey("tag")
	for {
		var ev map[string]any
		if err := dec.Decode(&ev); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode the sink's file: %v", err)
		}
		if ev["type"] == "loss" {
			if ev["reason"] != pipeline.ReasonKernel {
				t.Errorf("loss record: %v", ev)
			}
			continue
		}
		seq := uint64(testutil.Int(ev["seq"]))
		if seen[seq] {
			t.Fatalf("seq %d is in the file twice", seq)
		}
		seen[seq] = true
		if seq < lastSeq {
			t.Fatalf("seq %d follows seq %d", seq, lastSeq)
		}
		lastSeq = seq
		if ev["path"] == testutil.OpenLoopPath {
			loopEvents++
		} else {
			t.Logf("an open of %v by the load's process", ev["path"])
		}
		v := int(testutil.Int(ev["stage_version"]))
		if dv := digests[fmt.Sprint(ev[stampKey])]; dv != v {
			t.Fatalf("seq %d: processed by version %d, but stamped with the digest of version %d (%v)", seq, v, dv, ev[stampKey])
		}
		if v < lastVersion {
			t.Fatalf("seq %d ran version %d after version %d", seq, v, lastVersion)
		}
		lastVersion = v
		served[v]++
	}
	if uint64(len(seen)) != lastSeq {
		t.Errorf("the file holds %d events with sequence numbers up to %d: some are missing", len(seen), lastSeq)
	}
	// (kernelLost may also hold a few of the load's other opens.)
	if loopEvents > opens || loopEvents+kernelLost < opens {
		t.Errorf("the file holds %d events of the load's opens and %d were lost in the kernel; it made %d", loopEvents, kernelLost, opens)
	}
	for v := 1; v <= versions; v++ {
		if served[v] == 0 {
			t.Errorf("version %d processed no event", v)
		}
	}
}

// TestStageVersionFailures moves a followed tag to versions that must not
// run, one failure case after the other, while real exec events flow: a
// module whose init fails, one the allow-list refuses, one without a
// signature under a verify policy, one that grows its memory past the
// stage's memory_limit in its init, one that traps on every batch after
// its swap (rolled back), a deleted tag and a stopped registry. Each
// leaves the running version serving events, is counted under its result
// and logged once however often the tag is polled; the refused digest is
// not fetched again. After the registry comes back, a good version is
// swapped in.
func TestStageVersionFailures(t *testing.T) {
	testutil.RequireBPF(t)
	reg := registrytest.Start(t, registrytest.Options{})
	keys := t.TempDir()
	privPEM, pubPEM, err := sign.GenerateKeyPair([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := sign.LoadPrivateKey(privPEM, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(keys, "cosign.pub"), pubPEM, 0o644)

	// Every image is pushed under a tag of its own first: the allow-list
	// names the digests that may run.
	read := func(name string) []byte {
		b, err := os.ReadFile(testGuest(t, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	type image struct {
		module []byte
		key    *ecdsa.PrivateKey
		allow  bool
		digest digest.Digest
	}
	images := map[string]*image{
		"v1":       {module: tagModule(t, 1), key: key, allow: true},
		"v2":       {module: tagModule(t, 2), key: key, allow: true},
		"initfail": {module: read("init_fail"), key: key, allow: true},
		"initoom":  {module: read("init_bomb"), key: key, allow: true}, // a 16 MiB table in sluice_init
		"refused":  {module: tagModule(t, 3), key: key},
		"unsigned": {module: tagModule(t, 4), allow: true},
		"trap":     {module: read("trap"), key: key, allow: true},
	}
	var allow []string
	for name, im := range images {
		im.digest = reg.PushStage(t, reg.Host+"/stages/tag:"+name, im.module, im.key)
		if im.allow {
			allow = append(allow, fmt.Sprintf("%q", im.digest.String()))
		}
	}
	ref := reg.Host + "/stages/tag:stable"
	push := func(name string) { reg.PushStage(t, ref, images[name].module, images[name].key) }
	push("v1")

	var logs testutil.SyncBuffer
	dir := t.TempDir()
	src := fmt.Sprintf(`
agent {
  name           = "failing-host"
  data_dir       = %q
  shutdown_grace = "5s"
  allow          = [%s]
  verify { public_keys = [%q] }
}
source "gadget" "exec" { gadget = "trace_exec" }
stage "wasm" "tag" {
  module       = "oci://%s"
  memory_limit = "4MiB"
  reload {
    poll                  = "200ms"
    rollback_after_errors = 3
    rollback_window       = "1m"
  }
}
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.exec]
  stages  = [stage.wasm.tag]
  sinks   = [sink.stdout.out]
  queue { when_full = "drop_oldest" }
}
`, filepath.Join(dir, "data"), strings.Join(allow, ", "), filepath.Join(keys, "cosign.pub"), ref)
	f := parseFile(t, dir, src)
	fetched, diags := FetchImages(context.Background(), f, FetchOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ta := startAgent(t, f, Options{Images: fetched, Logger: textLogger(&logs)})
	defer ta.stop()

	checks := func() float64 {
		return ta.reg.Snapshot().Get(MetricStageVersionChecks, "component", "stage", "name", "tag")
	}
	reloads := func(result string) float64 {
		return ta.reg.Snapshot().Get(wasmstages.MetricReloads, "component", "stage", "name", "tag", "result", result)
	}
	// serves waits until an exec shows up processed by version v.
	serves := func(v int) {
		t.Helper()
		marker := fmt.Sprintf("sluice-failure-%d", rand.Uint32())
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
	// refusedOnce moves the tag (move) and waits for the refusal, then
	// for two more polls: the cause is counted, logged once, and v1
	// still serves.
	refusedOnce := func(name, result, logPart string, move func()) {
		t.Helper()
		defer func(start time.Time) { t.Logf("%s: %s", name, time.Since(start).Round(time.Millisecond)) }(time.Now())
		before := reloads(result)
		move()
		ta.waitFor(name+" refused", 20*time.Second, func() {}, func() bool {
			st := ta.stageStatus("tag")
			return st.State == StageFailed && st.Result == result
		})
		polls := checks()
		ta.waitFor("two more polls", 20*time.Second, func() {}, func() bool { return checks() >= polls+2 })
		if n := reloads(result) - before; n < 1 {
			t.Errorf("%s: reloads{result=%s} did not grow", name, result)
		}
		if n := strings.Count(logs.String(), "result="+result); n != 1 || !strings.Contains(logs.String(), logPart) {
			t.Errorf("%s: logged %d times (want once, mentioning %q); log:\n%s", name, n, logPart, logs.String())
		}
		if st := ta.stageStatus("tag"); st.Digest != images["v1"].digest.String() {
			t.Errorf("%s: the stage runs %s, want v1", name, st.Digest)
		}
		serves(1)
	}
	serves(1)

	refusedOnce("init failure", wasmstages.ReloadInit, "param", func() { push("initfail") })
	// An operator asking (what a config reload does) retries it once.
	before := reloads(wasmstages.ReloadInit)
	if err := ta.a.CheckStages(true, "tag"); err != nil {
		t.Fatal(err)
	}
	ta.waitFor("the retry an operator asked for", 20*time.Second, func() {}, func() bool { return reloads(wasmstages.ReloadInit) == before+1 })
	if err := ta.a.CheckStages(false, "nosuchstage"); err == nil {
		t.Error("CheckStages of an unknown stage did not fail")
	}
	initFailures := reloads(wasmstages.ReloadInit)
	refusedOnce("memory over the limit at init", wasmstages.ReloadMemoryLimit, "cannot allocate the 16 MiB table", func() { push("initoom") })
	if n := reloads(wasmstages.ReloadInit); n != initFailures {
		t.Errorf("the memory refusal was also counted as init: reloads{result=init} went from %v to %v", initFailures, n)
	}
	refusedOnce("not allowed", ReloadNotAllowed, "not allowed", func() { push("refused") })
	blobsBefore := reg.Requests("GET", "blobs")
	refusedOnce("unsigned", ReloadSignature, "not signed", func() { push("unsigned") })
	// The refused digest is fetched once, not at every poll.
	if n := reg.Requests("GET", "blobs") - blobsBefore; n > 3 {
		t.Errorf("the unsigned version was fetched again: %d blob requests", n)
	}

	// A version that traps on every batch: swapped in, then rolled back
	// after three failed batches, and held back while the tag stays.
	push("trap")
	ta.waitFor("the rollback", 30*time.Second, func() { exec.Command("/bin/true").Run() }, func() bool {
		return ta.stageStatus("tag").State == StageRolledBack
	})
	st := ta.stageStatus("tag")
	if st.Digest != images["v1"].digest.String() || st.Refused != images["trap"].digest.String() || reloads(ReloadRolledBack) != 1 {
		t.Errorf("after the rollback: %+v, rolled_back = %v; want v1 running and the trap version refused", st, reloads(ReloadRolledBack))
	}
	polls := checks()
	ta.waitFor("three more polls", 20*time.Second, func() {}, func() bool { return checks() >= polls+3 })
	if st := ta.stageStatus("tag"); st.Digest != images["v1"].digest.String() || st.State != StageRolledBack {
		t.Errorf("the rolled-back version was tried again: %+v", st)
	}
	serves(1)

	// The tag deleted, then the registry stopped: polls fail, v1 serves.
	refusedOnce("deleted tag", ReloadNotFound, "not found", func() { reg.DeleteTag(t, ref) })
	refusedOnce("registry down", ReloadRegistry, "connection refused", reg.Stop)
	// Failures that may pass are retried with backoff (TestBackoff): an
	// operator who knows the registry is back asks for a check.
	reg.Restart(t)
	push("v2")
	if err := ta.a.CheckStages(false, "tag"); err != nil {
		t.Fatal(err)
	}
	ta.waitFor("v2 serving", 30*time.Second, func() {}, func() bool { return ta.stageStatus("tag").Digest == images["v2"].digest.String() })
	serves(2)
	if st := ta.stageStatus("tag"); st.State != StageServing || st.Error != "" || st.Result != wasmstages.ReloadOK {
		t.Errorf("after the good version: %+v", st)
	}
	if got := ta.reg.Snapshot().Get(MetricStageInfo, "component", "stage", "name", "tag", "digest", images["v2"].digest.String(), "ref", "oci://"+ref); got != 1 {
		t.Errorf("sluice_stage_info of v2 = %v, want 1", got)
	}
	if got := ta.reg.Snapshot().Get(MetricStageInfo, "component", "stage", "name", "tag", "digest", images["v1"].digest.String(), "ref", "oci://"+ref); got != 0 {
		t.Errorf("sluice_stage_info still names v1: %v", got)
	}
	var js bytes.Buffer
	json.NewEncoder(&js).Encode(ta.a.StageStatus())
	t.Logf("status: %s", js.String())
}

// textLogger logs into w as text, from info up.
func textLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// TestSpecOf: a config module value is an image to follow whether or not
// it carries oci:// (a gadget value is read the same way); a file is
// watched and a built-in is neither.
func TestSpecOf(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, c := range []struct {
		value string
		m     stageModule
		kind  moduleKind
		ref   string
	}{
		{"oci://reg.lan/stages/f:v1", stageModule{}, moduleOCI, "reg.lan/stages/f:v1"},
		{"reg.lan/stages/f:v1", stageModule{}, moduleOCI, "reg.lan/stages/f:v1"},
		{"localhost:5000/stages/f@" + d, stageModule{}, moduleOCI, "localhost:5000/stages/f@" + d},
		{"./f.wasm", stageModule{path: "/etc/sluice/f.wasm"}, moduleFile, ""},
		{"drop-comm", stageModule{bytes: []byte("\x00asm")}, moduleBuiltin, ""},
	} {
		s := specOf(c.value, c.m, "config", 0)
		if s.kind != c.kind || s.err != nil {
			t.Errorf("%q: kind %d (error %v), want %d", c.value, s.kind, s.err, c.kind)
			continue
		}
		if c.kind == moduleOCI && s.ref.String() != c.ref {
			t.Errorf("%q: reference %s, want %s", c.value, s.ref, c.ref)
		}
	}
}

// TestFollowsTagWithoutScheme: a stage whose module is HOST/REPO:TAG, without
// oci://, follows its tag like one written with it: a version pushed to
// the tag runs after the next check, and the tag's polls are counted.
func TestFollowsTagWithoutScheme(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	ref := reg.Host + "/stages/tag:stable"
	v1, v2 := tagModule(t, 1), tagModule(t, 2)
	d1 := reg.PushStage(t, ref, v1, nil)
	version := wasmstages.Version{Digest: d1.String(), Ref: ref}
	stage, err := wasmstages.New(ctx, wasmstages.Config{Name: "tag", ModuleBytes: v1, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	defer stage.Close(ctx)
	// A poll an hour apart: only the checks the test asks for look at the
	// tag.
	block := &config.Stage{Name: "tag", Wasm: &config.WasmStage{Module: ref, Reload: config.WasmReload{Watch: true, Poll: time.Hour}}}
	sp := &stagePlan{name: "tag", block: block, cfg: wasmstages.Config{Name: "tag", ModuleBytes: v1, Version: version}}
	access := &imageAccess{policy: oci.Policy{Pull: oci.PullMissing}, dataDir: t.TempDir()}
	metrics := pipeline.NewRegistry()
	f := newStageFollower(sp, access, func() []*wasmstages.Stage { return []*wasmstages.Stage{stage} }, slog.New(slog.DiscardHandler), metrics)
	fctx, cancel := context.WithCancel(ctx)
	go f.run(fctx)
	defer func() { cancel(); <-f.done }()

	f.checkWait(ctx)
	if r := stage.Running(); r.Digest != d1.String() {
		t.Fatalf("the stage runs %s, want v1 %s", r.Digest, d1)
	}
	d2 := reg.PushStage(t, ref, v2, nil)
	f.checkWait(ctx)
	if r, st := stage.Running(), f.Status(); r.Digest != d2.String() || st.Digest != d2.String() || st.State != StageServing {
		t.Errorf("after v2 was pushed: the stage runs %s, status %+v; want v2 %s serving", r.Digest, st, d2)
	}
	if n := metrics.Snapshot().Get(MetricStageVersionChecks, "component", "stage", "name", "tag"); n < 2 {
		t.Errorf("%s = %v after two checks of the tag", MetricStageVersionChecks, n)
	}
}
