package config

import (
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// NATSServer is the agent's `nats_server {}` block: a NATS server run
// in-process, so a single machine needs nothing else.
type NATSServer struct {
	Listen    string // host:port
	JetStream bool
	StoreDir  string // default: <data_dir>/nats
	DefRange  hcl.Range
}

// DefaultNATSListen is where the embedded server listens by default.
const DefaultNATSListen = "127.0.0.1:4222"

var natsServerSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "listen"}, {Name: "jetstream"}, {Name: "store_dir"}}}

func decodeNATSServer(b *hcl.Block, ectx *hcl.EvalContext, dataDir string) (*NATSServer, hcl.Diagnostics) {
	ns := &NATSServer{Listen: DefaultNATSListen, DefRange: b.DefRange}
	content, diags := b.Body.Content(natsServerSchema)
	if a := content.Attributes["listen"]; a != nil {
		s, ok, d := evalNonEmpty(a, ectx)
		diags = append(diags, d...)
		if ok {
			ns.Listen = s
		}
	}
	if a := content.Attributes["jetstream"]; a != nil {
		v, d := evalAs(a, ectx, cty.Bool)
		diags = append(diags, d...)
		if !d.HasErrors() && v.IsKnown() && !v.IsNull() {
			ns.JetStream = v.True()
		}
	}
	if a := content.Attributes["store_dir"]; a != nil {
		s, ok, d := evalNonEmpty(a, ectx)
		diags = append(diags, d...)
		if ok {
			ns.StoreDir = s
		}
	}
	if ns.StoreDir == "" {
		ns.StoreDir = filepath.Join(dataDir, "nats")
	}
	return ns, diags
}
