package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/oci/sign"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/wasmstages"
)

// This file keeps each Wasm stage on the version it should run: the
// config's module (a file that changes, an OCI tag that moves) unless the
// fleet's control bucket (rollout.go) names another. One stageFollower per
// stage name owns every swap of that stage, in every running pipeline that
// lists it, so that a file watch, a tag poll, a rollout and a config
// reload never race.

// StageStatus says what a Wasm stage runs and how its last change went:
// what `sluice ctl status` shows and agents publish to the control bucket.
type StageStatus struct {
	Stage string `json:"stage"`
	// Digest and Ref name the running version ("sha256:..."; an OCI
	// reference, a file or a built-in stage).
	Digest string    `json:"digest"`
	Ref    string    `json:"ref"`
	Since  time.Time `json:"since"` // when it started serving
	// Desired is what the stage should run: the config's module value or
	// the control bucket's; DesiredFrom says which ("config", or
	// "kv:<key>" with the entry's revision).
	Desired         string `json:"desired"`
	DesiredFrom     string `json:"desired_from"`
	DesiredRevision uint64 `json:"desired_revision,omitempty"`
	// State is StageServing, StagePending, StageFailed or
	// StageRolledBack; Result the last attempt's (a reload result:
	// "ok", "registry", "signature", ...), Error its error.
	State  string `json:"state"`
	Result string `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
	// Refused is the digest of the version that was refused or rolled
	// back, kept from running until the desired version changes or an
	// operator asks again.
	Refused string `json:"refused,omitempty"`
	// LastSwap is when the last swap happened and SwapTook how long it
	// took from the new digest being seen to the version serving.
	LastSwap time.Time     `json:"last_swap,omitzero"`
	SwapTook time.Duration `json:"swap_took_ns,omitempty"`
	// Checked is when the desired version was last looked at.
	Checked time.Time `json:"checked,omitzero"`
}

// States of a stage (StageStatus.State).
const (
	StageServing    = "serving"     // runs the desired version
	StagePending    = "pending"     // working on a new version
	StageFailed     = "failed"      // the desired version could not be had or refused; the last good one serves
	StageRolledBack = "rolled_back" // the desired version failed after its swap and was replaced by the previous one
)

// Results of a reload attempt beyond wasmstages' (ok, compile, abi,
// memory_limit, init): the result label of sluice_stage_reloads_total.
const (
	ReloadRegistry   = "registry"    // the registry could not be reached or answered with an error
	ReloadNotFound   = "not_found"   // the tag (or digest) is not in the registry
	ReloadNotAllowed = "not_allowed" // the allow-list refused the image
	ReloadSignature  = "signature"   // no valid signature under a verify policy
	ReloadBadImage   = "image"       // not a stage image
	ReloadBadRef     = "invalid_ref" // a control bucket value that names no module
	ReloadUnreadable = "unreadable"  // a module file that cannot be read
	ReloadRolledBack = "rolled_back" // the version failed too often after its swap
)

// Metric names of the stage version series, labelled {component="stage",
// name} like every stage series.
const (
	// MetricStageInfo is 1 for the version running, labelled digest and ref.
	MetricStageInfo = "sluice_stage_info"
	// MetricStageLastSwap is the Unix time of the last swap; 0 until the
	// first.
	MetricStageLastSwap = "sluice_stage_last_swap_timestamp_seconds"
	// MetricStageVersionChecks counts the polls of a followed tag (HEAD
	// requests to the registry).
	MetricStageVersionChecks = "sluice_stage_version_checks_total"
)

// Timing of the followers.
const (
	// tagResolveTimeout bounds one HEAD request to a registry.
	tagResolveTimeout = 10 * time.Second
	// maxBackoff bounds the wait between attempts after failures that may
	// pass (a registry down), unless the poll is longer.
	maxBackoff = 5 * time.Minute
	// rollbackCheck is how often a version inside its rollback window is
	// checked for failures.
	rollbackCheck = 50 * time.Millisecond
	// idle is the wait of a follower with nothing to poll: only a wake-up
	// (a rollout, an operator) makes it look again.
	idle = time.Hour
)

// moduleKind says where a module comes from.
type moduleKind uint8

const (
	moduleBuiltin moduleKind = iota
	moduleFile
	moduleOCI
)

// moduleSpec is a version a stage should run, as named by the config or
// the control bucket.
type moduleSpec struct {
	kind  moduleKind
	value string        // as written
	bytes []byte        // moduleBuiltin
	path  string        // moduleFile
	ref   oci.Reference // moduleOCI; a digest pins it, a tag is followed
	// from is "config" or "kv:<key>"; revision the KV entry's.
	from     string
	revision uint64
	// err is why a control bucket value names no module.
	err error
}

// identity tells two specs apart: a new one (another value, another KV
// revision) is an operator's decision, which retries refused versions.
func (s *moduleSpec) identity() string {
	return fmt.Sprintf("%s#%d#%s", s.from, s.revision, s.value)
}

// imageAccess is how followers fetch images: the agent's image policy and
// store.
type imageAccess struct {
	policy  oci.Policy
	dataDir string
}

func (ia *imageAccess) stageAt(ctx context.Context, ref oci.Reference, d digest.Digest) (*oci.StageImage, error) {
	store, err := oci.OpenStore(ctx, ia.dataDir)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	return oci.NewResolver(store, ia.policy).StageAt(ctx, ref, d)
}

func (ia *imageAccess) tagStored(ctx context.Context, ref oci.Reference, d digest.Digest) error {
	store, err := oci.OpenStore(ctx, ia.dataDir)
	if err != nil {
		return err
	}
	defer store.Close()
	return oci.NewResolver(store, ia.policy).TagStored(ctx, ref, d)
}

// stageFollower owns the version of one stage (by name), in every running
// pipeline that lists it. Its methods are safe for concurrent use; run is
// called once, by the agent's followers.
type stageFollower struct {
	name string
	// targets returns the stage's running instances: the set changes with
	// reloads.
	targets func() []*wasmstages.Stage
	log     *slog.Logger
	reg     *pipeline.Registry

	wake   chan struct{}      // cap 1: look now
	checks chan chan struct{} // look now, and say when done
	// stop ends run; done is closed when run has returned.
	stop context.CancelFunc
	done chan struct{}

	mu sync.Mutex
	// The config's part, which a reload changes (configure).
	cfgSpec  moduleSpec
	settings followSettings
	images   *imageAccess
	override *moduleSpec // from the control bucket; nil: the config's
	retry    bool        // an operator asked to retry refused versions
	status   StageStatus
	notify   func() // status changed
	running  *loadedVersion

	// Owned by run.
	lastSpec       string
	set            followSettings // of the check in progress
	access         *imageAccess
	failed         map[string]string // refused digests -> result
	held           map[string]bool   // rolled-back digests
	logged         map[string]bool   // causes logged once
	transient      int               // failures in a row that may pass, for backoff
	transientCause string            // their result
	fileSeen       os.FileInfo
	fileDigest     string
	cur, prev      *loadedVersion
	window         *rollbackWindow
	infoLabels     []string
	checkCount     *pipeline.Counter
	lastSwapped    *pipeline.Gauge
}

// followSettings are a stage's reload settings.
type followSettings struct {
	watch   bool
	poll    time.Duration // 0: the default of the module's kind
	rbAfter int
	rbWin   time.Duration
}

// loadedVersion is a version's bytes and name, kept for a rollback.
type loadedVersion struct {
	module  []byte
	version wasmstages.Version
}

// rollbackWindow watches a freshly swapped version.
type rollbackWindow struct {
	until  time.Time
	digest string
	seqs   map[*wasmstages.Stage]int // the version's Seq in each instance
}

// registerStageVersions registers at zero the version series a follower
// of sp can emit, so that alerts see 0 from the start: a swap's every
// result that can happen to the stage (wasmstages' own on any swap; a
// fetch's for a module that is an image or when the control bucket can
// name one; a bad control value with a control connection; an unreadable
// file for a file module; a rollback when rollback_after_errors is set),
// the tag checks where a tag can be followed, and the last-swap time.
func registerStageVersions(reg *pipeline.Registry, sp *stagePlan, control bool) {
	w := sp.block.Wasm
	image := IsImageReference(w.Module)
	results := wasmstages.ReloadResults()
	if image || control {
		results = append(results, ReloadRegistry, ReloadNotFound, ReloadNotAllowed, ReloadSignature, ReloadBadImage)
	}
	if control {
		results = append(results, ReloadBadRef)
	}
	if sp.cfg.Module != "" {
		results = append(results, ReloadUnreadable)
	}
	if w.Reload.RollbackAfterErrors > 0 {
		results = append(results, ReloadRolledBack)
	}
	for _, r := range results {
		wasmstages.ReloadCounter(reg, sp.name, r)
	}
	m := reg.Component("stage", sp.name)
	m.Gauge(MetricStageLastSwap, "Unix time of the last version swap of a Wasm stage (0: none yet).")
	if image || control {
		m.Counter(MetricStageVersionChecks, "Polls of a followed OCI tag (HEAD requests to its registry).")
	}
}

// hasControl tells whether cfg connects the agent to a control bucket.
func hasControl(cfg *config.File) bool {
	return cfg.Agent.Control != nil && cfg.Agent.Control.NATS != nil
}

// newStageFollower builds the follower of the stage planned as sp (in any
// pipeline), whose running instances targets returns.
func newStageFollower(sp *stagePlan, images *imageAccess, targets func() []*wasmstages.Stage, log *slog.Logger, reg *pipeline.Registry) *stageFollower {
	f := &stageFollower{
		name: sp.name, targets: targets, log: log.With("stage", sp.name), reg: reg,
		wake: make(chan struct{}, 1), checks: make(chan chan struct{}), done: make(chan struct{}),
		failed: map[string]string{}, held: map[string]bool{}, logged: map[string]bool{},
		cur:    planVersion(sp),
		notify: func() {},
	}
	f.running = f.cur
	f.configure(sp, images)
	m := reg.Component("stage", sp.name)
	f.checkCount = m.Counter(MetricStageVersionChecks, "Polls of a followed OCI tag (HEAD requests to its registry).")
	f.lastSwapped = m.Gauge(MetricStageLastSwap, "Unix time of the last version swap of a Wasm stage (0: none yet).")
	f.status = StageStatus{Stage: sp.name, Desired: sp.block.Wasm.Module, DesiredFrom: "config", State: StageServing}
	return f
}

// planVersion is the module and version the config names for sp.
func planVersion(sp *stagePlan) *loadedVersion {
	module := sp.cfg.ModuleBytes
	if module == nil {
		module = sp.moduleBytes // a file's
	}
	return &loadedVersion{module: module, version: sp.cfg.Version}
}

// configure takes the config's part of the stage from sp (at the start
// and at every reload) and makes the follower look again.
func (f *stageFollower) configure(sp *stagePlan, images *imageAccess) {
	w := sp.block.Wasm
	m := stageModule{bytes: planVersion(sp).module, path: sp.cfg.Module, version: sp.cfg.Version}
	f.mu.Lock()
	f.cfgSpec = specOf(w.Module, m, "config", 0)
	f.settings = followSettings{watch: w.Reload.Watch, poll: w.Reload.Poll, rbAfter: w.Reload.RollbackAfterErrors, rbWin: w.Reload.RollbackWindow}
	f.images = images
	f.mu.Unlock()
	f.wakeUp()
}

// specOf is the spec of a config module value, resolved to m.
func specOf(value string, m stageModule, from string, rev uint64) moduleSpec {
	s := moduleSpec{value: value, from: from, revision: rev}
	switch {
	case IsImageReference(value):
		s.kind = moduleOCI
		s.ref, s.err = oci.ParseReference(value)
	case m.path != "":
		s.kind, s.path = moduleFile, m.path
	default:
		s.kind, s.bytes = moduleBuiltin, m.bytes
	}
	return s
}

// parseOverride turns a control bucket value into a spec: an OCI
// reference (with or without oci://, by tag or digest), or a bare digest
// of the repository the config's module names.
func (f *stageFollower) parseOverride(value, key string, rev uint64) *moduleSpec {
	f.mu.Lock()
	cfgSpec := f.cfgSpec
	f.mu.Unlock()
	s := &moduleSpec{kind: moduleOCI, value: strings.TrimSpace(value), from: "kv:" + key, revision: rev}
	if strings.HasPrefix(s.value, "sha256:") {
		d, err := digest.Parse(s.value)
		switch {
		case err != nil:
			s.err = fmt.Errorf("value %q: %w", s.value, err)
		case cfgSpec.kind != moduleOCI || cfgSpec.err != nil:
			s.err = fmt.Errorf("value %q is a bare digest, but the config's module %q names no image repository; give a whole reference (REGISTRY/REPO@%s)", s.value, cfgSpec.value, s.value)
		default:
			s.ref = oci.Reference{Registry: cfgSpec.ref.Registry, Repository: cfgSpec.ref.Repository, Digest: d}
		}
		return s
	}
	if !oci.LooksLikeReference(s.value) {
		s.err = fmt.Errorf("value %q is neither an image reference (REGISTRY/REPO:TAG, REGISTRY/REPO@sha256:...) nor a digest", s.value)
		return s
	}
	s.ref, s.err = oci.ParseReference(s.value)
	return s
}

// setOverride makes the control bucket's value (nil: none) what the stage
// should run, and wakes the follower.
func (f *stageFollower) setOverride(s *moduleSpec) {
	f.mu.Lock()
	same := (s == nil && f.override == nil) || (s != nil && f.override != nil && s.identity() == f.override.identity())
	f.override = s
	f.mu.Unlock()
	if !same {
		f.wakeUp()
	}
}

// overridden returns the version the stage runs while the control bucket
// names one, for an instance that a reload builds: it starts on that
// version rather than on the config's. nil when the config's applies.
func (f *stageFollower) overridden() *loadedVersion {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.override == nil {
		return nil
	}
	return f.running
}

// CheckNow makes the follower look at the stage's desired version now
// instead of at its next poll (an immediate tag check). With retryRefused
// it also retries versions it refused or rolled back. Safe for concurrent
// use; it does not wait for the check.
func (f *stageFollower) CheckNow(retryRefused bool) {
	if retryRefused {
		f.mu.Lock()
		f.retry = true
		f.mu.Unlock()
	}
	f.wakeUp()
}

func (f *stageFollower) wakeUp() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// checkWait looks at the stage's desired version now and returns when
// that is done (or ctx is): a reload that found the module file changed
// waits for the swap, as when it swapped the file in itself.
func (f *stageFollower) checkWait(ctx context.Context) {
	done := make(chan struct{})
	select {
	case f.checks <- done:
	case <-ctx.Done():
		return
	case <-f.done:
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	case <-f.done:
	}
}

// Status returns the stage's status. Safe for concurrent use.
func (f *stageFollower) Status() StageStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

// publishRunning makes the status and the info metric say what the
// stage's instances run, before the first check.
func (f *stageFollower) publishRunning() {
	targets := f.targets()
	if len(targets) == 0 {
		return
	}
	r := targets[0].Running()
	f.mu.Lock()
	f.status.Digest, f.status.Ref, f.status.Since = r.Digest, r.Ref, r.Since
	f.mu.Unlock()
	f.setInfo(&r.Version)
}

// setInfo makes sluice_stage_info name v (nil: nothing).
func (f *stageFollower) setInfo(v *wasmstages.Version) {
	if f.infoLabels != nil {
		f.reg.Remove(MetricStageInfo, f.infoLabels...)
		f.infoLabels = nil
	}
	if v != nil {
		f.infoLabels = []string{"component", "stage", "name", f.name, "digest", v.Digest, "ref", v.Ref}
		f.reg.Gauge(MetricStageInfo, "The version a Wasm stage runs (value 1).", f.infoLabels...).Set(1)
	}
}

// run follows the stage until ctx is done; done is closed then.
func (f *stageFollower) run(ctx context.Context) {
	defer close(f.done)
	defer f.setInfo(nil) // a stage that is gone runs nothing
	nextPoll := time.Now()
	var checked chan struct{}
	for {
		if now := time.Now(); !now.Before(nextPoll) {
			nextPoll = now.Add(f.reconcile(ctx))
		}
		if checked != nil {
			close(checked)
			checked = nil
		}
		if ctx.Err() != nil {
			return
		}
		wait := time.Until(nextPoll)
		if f.window != nil {
			wait = min(wait, rollbackCheck)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-f.wake:
			nextPoll = time.Now()
		case checked = <-f.checks:
			nextPoll = time.Now()
		case <-t.C:
		}
		t.Stop()
		f.checkRollback(ctx)
	}
}

// desired returns the spec the stage should run, the stage's settings
// and image access, and whether an operator asked to retry refused
// versions (once).
func (f *stageFollower) desired() (moduleSpec, followSettings, *imageAccess, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	retry := f.retry
	f.retry = false
	if f.override != nil {
		return *f.override, f.settings, f.images, retry
	}
	return f.cfgSpec, f.settings, f.images, retry
}

// pollFor is the poll interval of a spec's kind.
func (set followSettings) pollFor(s *moduleSpec) time.Duration {
	if set.poll > 0 {
		return set.poll
	}
	if s.kind == moduleFile {
		return config.DefaultWasmReloadPoll
	}
	return config.DefaultWasmTagPoll
}

// reconcile brings the stage to its desired version if it can, and
// returns when to look again.
func (f *stageFollower) reconcile(ctx context.Context) time.Duration {
	spec, set, images, retry := f.desired()
	f.set, f.access = set, images
	if id := spec.identity(); id != f.lastSpec || retry {
		// A new desired version, or an operator asking: what was refused
		// before may be tried again.
		f.lastSpec = id
		clear(f.failed)
		clear(f.held)
		clear(f.logged)
		f.transient = 0
		f.fileSeen = nil
		// Pending in the same update: a reader must never see the new
		// desired version next to the old state.
		f.update(func(s *StageStatus) {
			s.Desired, s.DesiredFrom, s.DesiredRevision = spec.value, spec.from, spec.revision
			s.State, s.Result, s.Error, s.Refused = StagePending, "", "", ""
		})
	}
	poll := set.pollFor(&spec)
	following := set.watch || spec.from != "config"
	if !following {
		poll = idle
	}
	if spec.err != nil {
		f.fail(ctx, &spec, "", ReloadBadRef, spec.err, false)
		return idle
	}
	switch spec.kind {
	case moduleBuiltin:
		f.apply(ctx, &spec, spec.bytes, wasmstages.Version{Digest: wasmstages.ModuleDigest(spec.bytes), Ref: spec.value}, time.Now())
		return idle
	case moduleFile:
		f.reconcileFile(ctx, &spec)
		return poll
	}
	if spec.ref.Digest != "" {
		f.reconcileDigest(ctx, &spec, spec.ref.Digest)
		return idle
	}
	if !following && f.cur.version.Ref == spec.value {
		// The config's tag, not followed: what runs is what it named.
		f.apply(ctx, &spec, f.cur.module, f.cur.version, time.Now())
		return idle
	}
	f.checkCount.Inc()
	hctx, cancel := context.WithTimeout(ctx, tagResolveTimeout)
	desc, err := oci.ResolveRemote(hctx, spec.ref, images.policy.Remote)
	cancel()
	f.update(func(s *StageStatus) { s.Checked = time.Now() })
	if err != nil {
		result := ReloadRegistry
		if errors.Is(err, oci.ErrNotFound) {
			result = ReloadNotFound
		}
		f.fail(ctx, &spec, "", result, err, true)
		return f.backoff(poll)
	}
	if f.reconcileDigest(ctx, &spec, desc.Digest) {
		return f.backoff(poll)
	}
	return poll
}

// backoff stretches poll after failures in a row that may pass.
func (f *stageFollower) backoff(poll time.Duration) time.Duration {
	d := poll << min(f.transient, 5)
	return min(d, max(poll, maxBackoff))
}

// reconcileFile swaps in the module file's content when it is not what
// runs.

// reconcileFile swaps in the module file's content when it is not what
// runs.
func (f *stageFollower) reconcileFile(ctx context.Context, spec *moduleSpec) {
	st, err := os.Stat(spec.path)
	if err == nil && f.fileSeen != nil && os.SameFile(f.fileSeen, st) && st.Size() == f.fileSeen.Size() && st.ModTime().Equal(f.fileSeen.ModTime()) &&
		f.cur.version.Digest == f.fileDigest {
		f.apply(ctx, spec, f.cur.module, f.cur.version, time.Now()) // instances a reload added
		return
	}
	var b []byte
	if err == nil {
		b, err = os.ReadFile(spec.path)
	}
	if err != nil {
		if f.cur.version.Ref == spec.path {
			// Being replaced (a rename over it), or gone: keep running
			// what runs.
			f.apply(ctx, spec, f.cur.module, f.cur.version, time.Now())
			return
		}
		f.fail(ctx, spec, "", ReloadUnreadable, fmt.Errorf("read module file: %w", err), true)
		return
	}
	f.fileSeen = st
	f.fileDigest = wasmstages.ModuleDigest(b)
	f.apply(ctx, spec, b, wasmstages.Version{Digest: f.fileDigest, Ref: spec.path}, time.Now())
}

// reconcileDigest brings the stage to image digest d of spec's
// repository. It reports whether it failed in a way that may pass.
func (f *stageFollower) reconcileDigest(ctx context.Context, spec *moduleSpec, d digest.Digest) (transient bool) {
	dig := d.String()
	if f.cur.version.Digest == dig {
		// Nothing to fetch: make every instance run it, under this name
		// (the config's tag and a rollout's digest may name one image).
		f.transient = 0
		f.apply(ctx, spec, f.cur.module, wasmstages.Version{Digest: dig, Ref: spec.value}, time.Now())
		return false
	}
	if f.failed[dig] != "" || f.held[dig] {
		return false // refused before: wait for the tag to move or an operator
	}
	seen := time.Now()
	f.update(func(s *StageStatus) { s.State, s.Error = StagePending, "" })
	img, err := f.access.stageAt(ctx, spec.ref, d)
	if err != nil {
		result, passes := fetchResult(err)
		f.fail(ctx, spec, dig, result, err, passes)
		return passes
	}
	f.transient = 0
	if !f.apply(ctx, spec, img.Module, wasmstages.Version{Digest: dig, Ref: spec.value}, seen) {
		return false
	}
	if spec.ref.Tag != "" {
		if err := f.access.tagStored(ctx, spec.ref, d); err != nil {
			f.log.Warn("cannot tag the running version in the image store; the next start resolves the tag again", "ref", spec.ref.String(), "error", err)
		}
	}
	return false
}

// fetchResult names why an image could not be fetched, and whether
// fetching it again may work.
func fetchResult(err error) (result string, passes bool) {
	var pe *oci.PolicyError
	switch {
	case errors.As(err, &pe):
		return ReloadNotAllowed, false
	case errors.Is(err, sign.ErrUnsigned), errors.Is(err, sign.ErrNoValidSignature):
		return ReloadSignature, false
	case errors.Is(err, oci.ErrBadStageImage):
		return ReloadBadImage, false
	case errors.Is(err, oci.ErrNotFound):
		return ReloadNotFound, true
	}
	return ReloadRegistry, true
}

// apply makes every instance of the stage run module as version v, unless
// it runs it already; seen is when the version was first seen, for the
// log. It reports whether the version now runs everywhere.
func (f *stageFollower) apply(ctx context.Context, spec *moduleSpec, module []byte, v wasmstages.Version, seen time.Time) bool {
	if f.failed[v.Digest] != "" || f.held[v.Digest] {
		return false
	}
	moduleDigest := strings.TrimPrefix(wasmstages.ModuleDigest(module), "sha256:")
	var done []*wasmstages.Stage
	swapped := false
	for _, t := range f.targets() {
		r := t.Running()
		if r.Version == v && r.Module == moduleDigest {
			continue
		}
		if err := t.SwapVersion(ctx, module, v); err != nil {
			if errors.Is(err, wasmstages.ErrClosed) {
				continue // a pipeline that stopped meanwhile
			}
			for _, d := range done {
				if rerr := d.SwapVersion(context.WithoutCancel(ctx), f.cur.module, f.cur.version); rerr != nil {
					f.log.Error("cannot return a pipeline's instance to the running version", "error", rerr)
				}
			}
			if ctx.Err() != nil {
				return false // shutting down: not the version's fault
			}
			f.fail(ctx, spec, v.Digest, wasmstages.ReloadResult(err), err, false)
			return false
		}
		done = append(done, t)
		swapped = swapped || r.Module != moduleDigest
	}
	old := f.cur
	if old.version != v || !bytes.Equal(old.module, module) {
		f.cur = &loadedVersion{module: module, version: v}
		f.mu.Lock()
		f.running = f.cur
		f.mu.Unlock()
		f.setInfo(&v)
	}
	f.transient = 0
	if !swapped {
		if len(done) > 0 && old.version != v {
			f.log.Info("stage version renamed", "digest", v.Digest, "ref", v.Ref)
		}
		f.update(func(s *StageStatus) {
			s.Digest, s.Ref = v.Digest, v.Ref
			if s.State != StageRolledBack || s.Refused == "" {
				s.State, s.Error = StageServing, ""
				if s.Result == "" {
					s.Result = wasmstages.ReloadOK
				}
			}
		})
		return true
	}
	clear(f.logged)
	now := time.Now()
	if old.version.Digest != v.Digest {
		f.prev = old
	}
	took := now.Sub(seen)
	f.lastSwapped.Set(now.Unix())
	f.window = nil
	if f.set.rbAfter > 0 && f.prev != nil {
		w := &rollbackWindow{until: now.Add(f.set.rbWin), digest: v.Digest, seqs: map[*wasmstages.Stage]int{}}
		for _, t := range f.targets() {
			seq, _ := t.Failures()
			w.seqs[t] = seq
		}
		f.window = w
	}
	f.update(func(s *StageStatus) {
		s.Digest, s.Ref, s.Since = v.Digest, v.Ref, now
		s.State, s.Result, s.Error, s.Refused = StageServing, wasmstages.ReloadOK, "", ""
		s.LastSwap, s.SwapTook = now, took
	})
	f.log.Info("stage version serving", "from", wasmstages.ShortDigest(old.version.Digest), "to", wasmstages.ShortDigest(v.Digest),
		"ref", v.Ref, "desired_from", spec.from, "took", took.Round(time.Millisecond))
	return true
}

// fail records a failed attempt at spec (at digest dig, when known): it is
// counted every time, logged once per cause and digest, and a version
// that failed for a reason that will not pass is refused until the
// desired version changes or an operator asks.
func (f *stageFollower) fail(ctx context.Context, spec *moduleSpec, dig, result string, err error, passes bool) {
	if ctx.Err() != nil {
		return
	}
	switch result {
	case wasmstages.ReloadCompile, wasmstages.ReloadABI, wasmstages.ReloadMemoryLimit, wasmstages.ReloadInit:
		// The stage counted its own load failure.
	default:
		wasmstages.ReloadCounter(f.reg, f.name, result).Inc()
	}
	if passes {
		// Backoff is for the same failure again; another cause starts
		// afresh.
		if f.transientCause != result {
			f.transient, f.transientCause = 0, result
		}
		f.transient++
	} else if dig != "" {
		f.failed[dig] = result
	}
	key := result + "|" + dig + "|" + spec.value
	attrs := []any{"desired", spec.value, "desired_from", spec.from, "result", result, "error", err}
	if dig != "" {
		attrs = append(attrs, "digest", dig)
	}
	if !f.logged[key] {
		f.logged[key] = true
		what := "cannot switch to the desired stage version; the running version stays"
		if passes {
			what += " (retrying with backoff)"
		}
		f.log.Warn(what, append(attrs, "running", wasmstages.ShortDigest(f.cur.version.Digest))...)
	} else {
		f.log.Debug("stage version still unavailable", attrs...)
	}
	f.update(func(s *StageStatus) {
		s.State, s.Result, s.Error = StageFailed, result, err.Error()
		if !passes {
			s.Refused = dig
		}
	})
}

// checkRollback returns a freshly swapped version to the previous one when
// it failed too often within its window.
func (f *stageFollower) checkRollback(ctx context.Context) {
	w := f.window
	if w == nil {
		return
	}
	var failed uint64
	for _, t := range f.targets() {
		if seq, n := t.Failures(); seq == w.seqs[t] {
			failed += n
		}
	}
	if failed < uint64(f.set.rbAfter) {
		if time.Now().After(w.until) {
			f.window = nil // it held: no rollback to it any more
		}
		return
	}
	f.window = nil
	bad, prev := f.cur, f.prev
	if prev == nil {
		return
	}
	for _, t := range f.targets() {
		if err := t.SwapVersion(ctx, prev.module, prev.version); err != nil && !errors.Is(err, wasmstages.ErrClosed) {
			f.log.Error("cannot roll back to the previous stage version", "to", prev.version.Digest, "error", err)
			return
		}
	}
	f.cur, f.prev = prev, nil
	f.mu.Lock()
	f.running = prev
	f.mu.Unlock()
	f.held[bad.version.Digest] = true
	f.setInfo(&prev.version)
	now := time.Now()
	f.lastSwapped.Set(now.Unix())
	wasmstages.ReloadCounter(f.reg, f.name, ReloadRolledBack).Inc()
	err := fmt.Errorf("rolled back: version %s failed %d calls within %s of its swap (rollback_after_errors = %d)", bad.version.Digest, failed, f.set.rbWin, f.set.rbAfter)
	f.log.Warn("stage version rolled back; it is held back until the desired version changes", "bad", bad.version.Digest, "to", prev.version.Digest,
		"ref", prev.version.Ref, "failed_calls", failed)
	f.update(func(s *StageStatus) {
		s.Digest, s.Ref, s.Since = prev.version.Digest, prev.version.Ref, now
		s.State, s.Result, s.Error, s.Refused = StageRolledBack, ReloadRolledBack, err.Error(), bad.version.Digest
		s.LastSwap, s.SwapTook = now, 0
	})
}

// update changes the status and tells the control connection when it did.
func (f *stageFollower) update(change func(*StageStatus)) {
	f.mu.Lock()
	before := f.status
	change(&f.status)
	changed := f.status != before
	notify := f.notify
	f.mu.Unlock()
	if changed {
		notify()
	}
}

// stageFollowers are the agent's stage followers, one per stage name of
// the running plan, and the control connection when the config has one.
// Run starts them once the pipelines run and stops them when they have
// stopped; a reload brings them in line with its plan (sync). Safe for
// concurrent use.
type stageFollowers struct {
	a *Agent

	mu      sync.Mutex
	ctx     context.Context // Run's; nil until start
	all     []*stageFollower
	control *controlClient
	wg      sync.WaitGroup
}

func (fs *stageFollowers) get(name string) *stageFollower {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	i := slices.IndexFunc(fs.all, func(f *stageFollower) bool { return f.name == name })
	if i < 0 {
		return nil
	}
	return fs.all[i]
}

func (fs *stageFollowers) list() []*stageFollower {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return slices.Clone(fs.all)
}

// start starts a follower per stage of pl and, with a control block, the
// control connection (rollout.go). Run calls it once the pipelines run.
func (fs *stageFollowers) start(ctx context.Context, pl *plan) {
	fs.mu.Lock()
	fs.ctx = ctx
	if hasControl(pl.cfg) {
		fs.control = newControlClient(pl.cfg.Agent, fs, fs.a.log)
	}
	fs.mu.Unlock()
	fs.sync(pl)
	if fs.control != nil {
		fs.wg.Go(func() { fs.control.run(ctx) })
	}
}

// sync makes the followers match pl: a follower for every stage name,
// configured from pl (a new one started, an existing one told), and none
// for a stage that is gone. Every follower then looks at its stage: a
// reload may have added instances that run another version.
func (fs *stageFollowers) sync(pl *plan) {
	fs.mu.Lock()
	if fs.ctx == nil {
		fs.mu.Unlock()
		return // not started: start syncs
	}
	var next, started []*stageFollower
	for _, pp := range pl.pipelines {
		for _, sp := range pp.stages {
			if slices.ContainsFunc(next, func(f *stageFollower) bool { return f.name == sp.name }) {
				continue
			}
			registerStageVersions(fs.a.metrics, sp, fs.control != nil)
			i := slices.IndexFunc(fs.all, func(f *stageFollower) bool { return f.name == sp.name })
			if i >= 0 {
				f := fs.all[i]
				f.configure(sp, pl.images)
				next = append(next, f)
				continue
			}
			name := sp.name
			f := newStageFollower(sp, pl.images, func() []*wasmstages.Stage { return fs.a.stagesNamed(name) }, fs.a.log, fs.a.metrics)
			if fs.control != nil {
				f.notify = func() { fs.control.markDirty(name) }
			}
			next = append(next, f)
			started = append(started, f)
		}
	}
	var gone []*stageFollower
	for _, f := range fs.all {
		if !slices.Contains(next, f) {
			gone = append(gone, f)
		}
	}
	fs.all = next
	ctx := fs.ctx
	fs.mu.Unlock()
	for _, f := range gone {
		f.stop()
		<-f.done
		if fs.control != nil {
			fs.control.forget(f.name)
		}
	}
	for _, f := range started {
		f.publishRunning()
		fctx, cancel := context.WithCancel(ctx)
		f.stop = cancel
		fs.wg.Go(func() { f.run(fctx) })
	}
	if fs.control != nil && (len(started) > 0 || len(gone) > 0) {
		fs.control.rewatch()
	}
}

// stop stops every follower and the control connection, and waits.
func (fs *stageFollowers) stop() {
	fs.mu.Lock()
	all := fs.all
	fs.mu.Unlock()
	for _, f := range all {
		if f.stop != nil {
			f.stop()
		}
	}
	if fs.control != nil {
		fs.control.stop()
	}
	fs.wg.Wait()
}

// stagesNamed returns the running instances of the stage called name.
func (a *Agent) stagesNamed(name string) []*wasmstages.Stage {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*wasmstages.Stage
	for _, lp := range a.pipelines {
		for _, ls := range lp.stages {
			if ls.plan.name == name {
				out = append(out, ls.stage)
			}
		}
	}
	return out
}

// StageStatus returns what each Wasm stage runs and how its last change
// went, in config order. Safe for concurrent use; empty until Run has
// started the pipelines.
func (a *Agent) StageStatus() []StageStatus {
	var out []StageStatus
	for _, f := range a.followers.list() {
		out = append(out, f.Status())
	}
	return out
}

// CheckStages makes the named Wasm stages (every one when names is empty)
// look at their desired version now (the tag's digest, the module file)
// instead of at their next poll; with retryRefused they also retry
// versions they refused or rolled back. It is what `sluice ctl reload`
// and SIGHUP ask for. It returns at once; the status says how it went.
// Safe for concurrent use.
func (a *Agent) CheckStages(retryRefused bool, names ...string) error {
	if len(names) == 0 {
		for _, f := range a.followers.list() {
			f.CheckNow(retryRefused)
		}
		return nil
	}
	var unknown []string
	for _, n := range names {
		if f := a.followers.get(n); f != nil {
			f.CheckNow(retryRefused)
		} else {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("check stages: no Wasm stage named %s", strings.Join(unknown, ", "))
	}
	return nil
}

// stageExtra fills in what the stage's follower knows for `sluice ctl
// status`: the version it runs (digest and reference), the last swap, and
// why the desired version does not run, if it does not. a.mu is held
// (the followers have their own lock).
func (a *Agent) stageExtra(name string, cs *ComponentStatus) {
	f := a.followers.get(name)
	if f == nil {
		return
	}
	st := f.Status()
	if st.Digest != "" {
		// Hex, as the other components' digests: the image's digest for a
		// stage from an image, the module's otherwise.
		cs.Digest, cs.Ref = strings.TrimPrefix(st.Digest, "sha256:"), st.Ref
	}
	cs.LastSwap = st.LastSwap
	if st.State == StageFailed || st.State == StageRolledBack {
		cs.Error = fmt.Sprintf("%s %s: %s (%s)", st.DesiredFrom, st.Desired, st.Error, st.Result)
	}
}
