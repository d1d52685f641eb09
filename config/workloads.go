package config

import (
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Containers is the agent's `containers` block: how events get container
// identity.
//
//	agent {
//	  containers {
//	    runtimes = ["/run/podman/podman.sock"]   # default: the usual sockets that exist
//	    wait     = "200ms"                       # bound on a batch's wait for an unknown namespace
//	  }
//	}
type Containers struct {
	// Enabled turns resolution on; true unless `enabled = false`.
	Enabled bool
	// Runtimes are Docker Engine API sockets (Docker's, Podman's); empty:
	// the agent probes the usual paths.
	Runtimes       []string
	RuntimesRanges []hcl.Range
	// Wait bounds how long a batch waits for an unknown namespace to be
	// resolved; 0: the default.
	Wait     time.Duration
	DefRange hcl.Range
}

var containersSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "enabled"},
		{Name: "runtimes"},
		{Name: "wait"},
	},
}

func decodeContainers(b *hcl.Block, ectx *hcl.EvalContext) (Containers, hcl.Diagnostics) {
	c := Containers{Enabled: true, DefRange: b.DefRange}
	content, diags := b.Body.Content(containersSchema)
	if a := content.Attributes["enabled"]; a != nil {
		v, ok, ds := evalBool(a, ectx)
		diags = append(diags, ds...)
		if ok {
			c.Enabled = v
		}
	}
	if a := content.Attributes["runtimes"]; a != nil {
		var ds hcl.Diagnostics
		c.Runtimes, c.RuntimesRanges, ds = evalStringList(a, ectx)
		diags = append(diags, ds...)
	}
	if a := content.Attributes["wait"]; a != nil {
		var ds hcl.Diagnostics
		c.Wait, ds = durationOr(a, ectx, c.Wait)
		diags = append(diags, ds...)
	}
	return c, diags
}

// SourceFilter is a source's `filter` block: which events the gadget
// emits. Everything but Fields runs in the kernel, for gadgets with the
// filter contract (docs/gadgets.md#filters); Fields is a host-side filter
// on the events' fields, for any gadget.
//
//	filter {
//	  pid        = 1234
//	  uid        = 0
//	  comm       = "curl"
//	  containers = ["web"]                 # by name, through their mount namespaces
//	  cgroups    = ["system.slice/nginx.service"]
//	  fields     = "ret<0"
//	}
type SourceFilter struct {
	PID, TID   uint32  // 0: any
	UID, GID   *uint32 // nil: any
	Comm       string
	MntNS      []uint64
	Cgroups    []string // cgroup v2 paths (absolute, or relative to the mount) or ids
	Containers []string // container names
	Fields     string   // host-side, Inspektor Gadget's syntax
	// Ranges of the attributes, for diagnostics the agent raises.
	Range                                          hcl.Range
	CommRange, FieldsRange, CgroupsRange, PIDRange hcl.Range
	ContainersRanges                               []hcl.Range
}

// IsZero reports whether the filter selects everything.
func (f *SourceFilter) IsZero() bool {
	return f == nil || (f.PID == 0 && f.TID == 0 && f.UID == nil && f.GID == nil && f.Comm == "" &&
		len(f.MntNS) == 0 && len(f.Cgroups) == 0 && len(f.Containers) == 0 && f.Fields == "")
}

var sourceFilterSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "pid"}, {Name: "tid"}, {Name: "uid"}, {Name: "gid"}, {Name: "comm"},
		{Name: "mntns"}, {Name: "cgroups"}, {Name: "containers"}, {Name: "fields"},
	},
}

// MaxCommLen is the longest comm the kernel keeps (TASK_COMM_LEN - 1).
const MaxCommLen = 15

func decodeSourceFilter(b *hcl.Block, ectx *hcl.EvalContext) (*SourceFilter, hcl.Diagnostics) {
	f := &SourceFilter{Range: b.DefRange}
	content, diags := b.Body.Content(sourceFilterSchema)
	for _, as := range sourceFilterSchema.Attributes {
		a := content.Attributes[as.Name]
		if a == nil {
			continue
		}
		var ds hcl.Diagnostics
		switch a.Name {
		case "pid", "tid":
			var n uint32
			var ok bool
			n, ok, ds = evalUint32(a, ectx)
			if ok && n == 0 {
				ds = append(ds, notPositive(a, "0"))
			} else if ok && a.Name == "pid" {
				f.PID, f.PIDRange = n, a.Expr.Range()
			} else if ok {
				f.TID = n
			}
		case "uid", "gid":
			n, ok, d := evalUint32(a, ectx)
			ds = d
			if ok && n == math.MaxUint32 {
				ds = append(ds, invalidValue(a, fmt.Sprintf("%s %d is the kernel's invalid id.", a.Name, n)))
			} else if ok && a.Name == "uid" {
				f.UID = &n
			} else if ok {
				f.GID = &n
			}
		case "comm":
			var s string
			var ok bool
			s, ok, ds = evalNonEmpty(a, ectx)
			if ok && len(s) > MaxCommLen {
				ds = append(ds, invalidValue(a, fmt.Sprintf("comm %q is %d bytes long; the kernel keeps at most %d, so it would match nothing.", s, len(s), MaxCommLen)))
			} else if ok {
				f.Comm, f.CommRange = s, a.Expr.Range()
			}
		case "mntns":
			f.MntNS, ds = evalUint64List(a, ectx)
		case "cgroups":
			f.Cgroups, _, ds = evalStringList(a, ectx)
			f.CgroupsRange = a.Expr.Range()
		case "containers":
			f.Containers, f.ContainersRanges, ds = evalStringList(a, ectx)
		case "fields":
			var s string
			var ok bool
			s, ok, ds = evalNonEmpty(a, ectx)
			if ok {
				f.Fields, f.FieldsRange = s, a.Expr.Range()
			}
		}
		diags = append(diags, ds...)
	}
	return f, diags
}

// evalUint32 decodes a whole number from 0 to 2^32-1.
func evalUint32(attr *hcl.Attribute, ectx *hcl.EvalContext) (uint32, bool, hcl.Diagnostics) {
	v, diags := evalAs(attr, ectx, cty.Number)
	if diags.HasErrors() || v.IsNull() {
		return 0, false, diags
	}
	n, ok := wholeNumber(v, math.MaxUint32)
	if !ok {
		return 0, false, append(diags, invalidValue(attr, fmt.Sprintf("%s must be a whole number from 0 to %d.", attr.Name, uint32(math.MaxUint32))))
	}
	return uint32(n), true, diags
}

func evalUint64List(attr *hcl.Attribute, ectx *hcl.EvalContext) ([]uint64, hcl.Diagnostics) {
	v, diags := evalAs(attr, ectx, cty.List(cty.Number))
	if diags.HasErrors() || v.IsNull() {
		return nil, diags
	}
	var out []uint64
	for _, e := range v.AsValueSlice() {
		n, ok := wholeNumber(e, math.MaxUint64)
		if !ok || e.IsNull() {
			return nil, append(diags, invalidValue(attr, fmt.Sprintf("%s must list whole, positive numbers.", attr.Name)))
		}
		out = append(out, n)
	}
	return out, diags
}

func wholeNumber(v cty.Value, maxValue uint64) (uint64, bool) {
	if v.IsNull() {
		return 0, false
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() || bf.Sign() < 0 {
		return 0, false
	}
	n, acc := bf.Uint64()
	if acc != 0 || n > maxValue {
		return 0, false
	}
	return n, true
}
