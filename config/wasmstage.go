package config

import (
	"fmt"
	"math"
	"path"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

func init() { registerStage("wasm", decodeWasmStage) }

// WasmStage is the body of a `stage "wasm"` block.
type WasmStage struct {
	// Module is the name of a built-in stage, a path to a .wasm file
	// (relative paths are taken from the config file's directory), or an
	// OCI reference (oci://...). The agent resolves it.
	Module      string
	ModuleRange hcl.Range
	// Params are handed to the module's sluice_init as a msgpack map. They
	// hold nil, bool, string, int64, uint64 (integers beyond int64),
	// float64, []any and map[string]any, as the HCL value had them.
	Params      map[string]any
	ParamsRange hcl.Range // the params expression; the block header when absent
	// Timeout bounds each call into the module (one batch, one tick).
	Timeout time.Duration
	// MemoryLimit bounds each instance's memory, in bytes.
	MemoryLimit int64
	// Workers is the number of instances that share a batch.
	Workers int
	// Tick is the interval of the module's sluice_tick; 0 means the
	// default interval if the module has one.
	Tick      time.Duration
	TickRange hcl.Range
	Reload    WasmReload
	Grants    WasmGrants
	// StampVersion adds the digest of the version that processed each
	// event to the event ("stage.<name>.digest").
	StampVersion bool
}

// WasmReload is the `reload {}` block: a stage whose module is a file is
// swapped to the file's new content when it changes, one whose module is
// an OCI reference by tag follows the tag.
type WasmReload struct {
	Watch bool
	// Poll is how often the file or the tag is looked at; 0 means
	// DefaultWasmReloadPoll for a file, DefaultWasmTagPoll for a tag.
	Poll time.Duration
	// RollbackAfterErrors, when not 0 (unset), returns the stage to the
	// version it ran before a swap when the new version fails that many
	// calls (each tripping on_error) within RollbackWindow after the swap.
	RollbackAfterErrors int
	RollbackWindow      time.Duration
}

// WasmGrants is the `grants {}` block: what the module may use beyond real
// clocks and random numbers.
type WasmGrants struct {
	Env            map[string]string // the module's whole environment
	Stdout, Stderr bool              // into the agent's log
	Dirs           []WasmDir
}

// WasmDir is a `dir "<guest path>" {}` block of grants.
type WasmDir struct {
	Guest    string // absolute path inside the module's file system
	Host     string // host directory; relative paths are taken from the config file's directory
	Writable bool
	Range    hcl.Range
}

// Defaults of the wasm stage.
const (
	DefaultWasmTimeout     = 100 * time.Millisecond
	DefaultWasmMemoryLimit = 64 << 20
	DefaultWasmWorkers     = 1
	DefaultWasmReloadPoll  = 2 * time.Second
	// DefaultWasmTagPoll is the poll of a followed OCI tag: a HEAD request
	// to the registry per stage and agent, so less often than a file.
	DefaultWasmTagPoll        = time.Minute
	DefaultWasmRollbackWindow = 30 * time.Second
	// minWasmTagPoll keeps a fleet from hammering its registry by mistake.
	minWasmTagPoll = 100 * time.Millisecond
	// MaxWasmWorkers bounds workers.
	MaxWasmWorkers = 64
	// minWasmMemory is one Wasm page; maxWasmMemory is all a wasm32
	// memory can address.
	minWasmMemory = 64 << 10
	maxWasmMemory = 4 << 30
)

var wasmStageSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "module", Required: true},
		{Name: "params"},
		{Name: "timeout"},
		{Name: "memory_limit"},
		{Name: "workers"},
		{Name: "tick"},
		{Name: "stamp_version"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "reload"}, {Type: "grants"}},
}

var wasmReloadSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "watch"}, {Name: "poll"}, {Name: "rollback_after_errors"}, {Name: "rollback_window"},
}}

var wasmGrantsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "env"}, {Name: "stdout"}, {Name: "stderr"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "dir", LabelNames: []string{"guest_path"}}},
}

var wasmDirSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "host", Required: true}, {Name: "writable"}}}

// decodeWasmStage decodes `stage "wasm" NAME { ... }`. Whether the module
// exists, exports the ABI and accepts the params is checked by the agent
// (and `sluice config validate`), which reports against the ranges kept
// here.
func decodeWasmStage(body hcl.Body, ectx *hcl.EvalContext, st *Stage) hcl.Diagnostics {
	w := &WasmStage{
		Timeout:     DefaultWasmTimeout,
		MemoryLimit: DefaultWasmMemoryLimit,
		Workers:     DefaultWasmWorkers,
		Reload:      WasmReload{Watch: true, RollbackWindow: DefaultWasmRollbackWindow},
		ParamsRange: st.DefRange,
	}
	st.Wasm = w
	content, diags := body.Content(wasmStageSchema)
	if a := content.Attributes["module"]; a != nil {
		w.ModuleRange = a.Expr.Range()
		var ds hcl.Diagnostics
		w.Module, _, ds = evalNonEmpty(a, ectx)
		diags = append(diags, ds...)
	}
	if a := content.Attributes["params"]; a != nil {
		w.ParamsRange = a.Expr.Range()
		p, ds := decodeStageParams(a, ectx)
		diags = append(diags, ds...)
		w.Params = p
	}
	if a := content.Attributes["timeout"]; a != nil {
		var ds hcl.Diagnostics
		w.Timeout, ds = durationIn(a, ectx, w.Timeout, wasmTimeoutBound)
		diags = append(diags, ds...)
	}
	if a := content.Attributes["memory_limit"]; a != nil {
		n, ok, ds := evalSizeIn(a, ectx, wasmMemoryBound)
		diags = append(diags, ds...)
		if ok {
			w.MemoryLimit = n
		}
	}
	if a := content.Attributes["workers"]; a != nil {
		n, ok, ds := evalIntIn(a, ectx, wasmWorkersBound)
		diags = append(diags, ds...)
		if ok {
			w.Workers = n
		}
	}
	if a := content.Attributes["tick"]; a != nil {
		w.TickRange = a.Expr.Range()
		var ds hcl.Diagnostics
		w.Tick, ds = durationIn(a, ectx, w.Tick, wasmTickBound)
		diags = append(diags, ds...)
	}
	if a := content.Attributes["stamp_version"]; a != nil {
		v, ok, ds := evalBool(a, ectx)
		diags = append(diags, ds...)
		if ok {
			w.StampVersion = v
		}
	}
	var reload, grants *hcl.Block
	for _, b := range content.Blocks {
		switch b.Type {
		case "reload":
			if reload != nil {
				diags = append(diags, duplicate("reload block", "A reload block", reload.DefRange, b.DefRange, "A stage has at most one reload block."))
				continue
			}
			reload = b
			diags = append(diags, decodeWasmReload(b, ectx, &w.Reload)...)
		case "grants":
			if grants != nil {
				diags = append(diags, duplicate("grants block", "A grants block", grants.DefRange, b.DefRange, "A stage has at most one grants block."))
				continue
			}
			grants = b
			diags = append(diags, decodeWasmGrants(b, ectx, &w.Grants)...)
		}
	}
	return diags
}

func decodeWasmReload(b *hcl.Block, ectx *hcl.EvalContext, r *WasmReload) hcl.Diagnostics {
	content, diags := b.Body.Content(wasmReloadSchema)
	if a := content.Attributes["watch"]; a != nil {
		v, ok, ds := evalBool(a, ectx)
		diags = append(diags, ds...)
		if ok {
			r.Watch = v
		}
	}
	if a := content.Attributes["poll"]; a != nil {
		d, ds := durationIn(a, ectx, r.Poll, reloadPollBound)
		diags = append(diags, ds...)
		if d > 0 && d < minWasmTagPoll {
			diags = append(diags, invalidValue(a, fmt.Sprintf("poll must be at least %s; got %s.", minWasmTagPoll, d)))
		} else {
			r.Poll = d
		}
	}
	if a := content.Attributes["rollback_after_errors"]; a != nil {
		n, ok, ds := evalIntIn(a, ectx, rollbackErrorsBound)
		diags = append(diags, ds...)
		if ok {
			r.RollbackAfterErrors = n
		}
	}
	if a := content.Attributes["rollback_window"]; a != nil {
		var ds hcl.Diagnostics
		r.RollbackWindow, ds = durationIn(a, ectx, r.RollbackWindow, rollbackWindowBound)
		diags = append(diags, ds...)
	}
	return diags
}

func decodeWasmGrants(b *hcl.Block, ectx *hcl.EvalContext, g *WasmGrants) hcl.Diagnostics {
	content, diags := b.Body.Content(wasmGrantsSchema)
	if a := content.Attributes["env"]; a != nil {
		v, ds := evalAs(a, ectx, cty.Map(cty.String))
		diags = append(diags, ds...)
		if !ds.HasErrors() && !v.IsNull() {
			g.Env = map[string]string{}
			for it := v.ElementIterator(); it.Next(); {
				k, ev := it.Element()
				if ev.IsNull() {
					diags = append(diags, invalidValue(a, fmt.Sprintf("The value of %s is null; give a string.", k.AsString())))
					continue
				}
				g.Env[k.AsString()] = ev.AsString()
			}
		}
	}
	for _, name := range []string{"stdout", "stderr"} {
		a := content.Attributes[name]
		if a == nil {
			continue
		}
		v, ok, ds := evalBool(a, ectx)
		diags = append(diags, ds...)
		if ok && name == "stdout" {
			g.Stdout = v
		} else if ok {
			g.Stderr = v
		}
	}
	seen := map[string]hcl.Range{}
	for _, db := range content.Blocks {
		dir := WasmDir{Guest: db.Labels[0], Range: db.DefRange}
		switch {
		case !path.IsAbs(dir.Guest) || path.Clean(dir.Guest) != dir.Guest:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid guest path",
				Detail:   fmt.Sprintf("The directory is mounted at %q in the module's file system; that must be a clean absolute path, such as \"/data\".", dir.Guest),
				Subject:  db.LabelRanges[0].Ptr(),
			})
		case seen[dir.Guest] != hcl.Range{}:
			diags = append(diags, duplicate("dir block", fmt.Sprintf("A dir block for %s", dir.Guest), seen[dir.Guest], db.DefRange, "Each guest path is mounted once."))
		}
		seen[dir.Guest] = db.DefRange
		dc, ds := db.Body.Content(wasmDirSchema)
		diags = append(diags, ds...)
		if a := dc.Attributes["host"]; a != nil {
			s, ok, ds := evalNonEmpty(a, ectx)
			diags = append(diags, ds...)
			if ok {
				dir.Host = s
			}
		}
		if a := dc.Attributes["writable"]; a != nil {
			v, ok, ds := evalBool(a, ectx)
			diags = append(diags, ds...)
			if ok {
				dir.Writable = v
			}
		}
		g.Dirs = append(g.Dirs, dir)
	}
	return diags
}

// decodeStageParams decodes a stage's params: an object of any HCL values.
func decodeStageParams(attr *hcl.Attribute, ectx *hcl.EvalContext) (map[string]any, hcl.Diagnostics) {
	v, diags := attr.Expr.Value(ectx)
	if diags.HasErrors() || v.IsNull() {
		return nil, diags
	}
	if !v.Type().IsObjectType() && !v.Type().IsMapType() {
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid params",
			Detail:   fmt.Sprintf("params must be an object, such as { comms = [\"sh\", \"bash\"] }; got %s.", v.Type().FriendlyName()),
			Subject:  attr.Expr.Range().Ptr(),
		})
	}
	g, err := ctyToGo(v, "params")
	if err != nil {
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid params",
			Detail:   err.Error(),
			Subject:  attr.Expr.Range().Ptr(),
		})
	}
	m, _ := g.(map[string]any)
	return m, diags
}

// ctyToGo converts an HCL value into plain Go values: maps and objects to
// map[string]any, lists, tuples and sets to []any, numbers to int64 when
// they are whole and fit, else uint64, else float64.
func ctyToGo(v cty.Value, at string) (any, error) {
	if !v.IsWhollyKnown() {
		return nil, fmt.Errorf("the value of %s must be known when the config is loaded", at)
	}
	if v.IsNull() {
		return nil, nil
	}
	t := v.Type()
	switch {
	case t == cty.String:
		return v.AsString(), nil
	case t == cty.Bool:
		return v.True(), nil
	case t == cty.Number:
		bf := v.AsBigFloat()
		if bf.IsInt() {
			if i, acc := bf.Int64(); acc == 0 {
				return i, nil
			}
			if u, acc := bf.Uint64(); acc == 0 {
				return u, nil
			}
		}
		f, _ := bf.Float64()
		if math.IsInf(f, 0) {
			return nil, fmt.Errorf("%s is too large for a number", at)
		}
		return f, nil
	case t.IsObjectType() || t.IsMapType():
		m := map[string]any{}
		for it := v.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			g, err := ctyToGo(ev, at+"."+k.AsString())
			if err != nil {
				return nil, err
			}
			m[k.AsString()] = g
		}
		return m, nil
	case t.IsListType() || t.IsTupleType() || t.IsSetType():
		l := []any{}
		i := 0
		for it := v.ElementIterator(); it.Next(); i++ {
			_, ev := it.Element()
			g, err := ctyToGo(ev, fmt.Sprintf("%s[%d]", at, i))
			if err != nil {
				return nil, err
			}
			l = append(l, g)
		}
		return l, nil
	}
	return nil, fmt.Errorf("%s has type %s, which params cannot hold", at, t.FriendlyName())
}
