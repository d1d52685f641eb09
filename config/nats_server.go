package config

import (
	"fmt"
	"net"
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
	// Auth is NATSAuthNKeys (the default: generated credentials, see
	// docs/config.md) or NATSAuthNone (anyone who can connect may read,
	// publish and delete; the config is warned about).
	Auth      string
	AuthRange hcl.Range // the auth attribute, for the warning
	DefRange  hcl.Range
}

// The embedded server's auth modes.
const (
	NATSAuthNKeys = "nkeys"
	NATSAuthNone  = "none"
)

// DefaultNATSListen is where the embedded server listens by default.
const DefaultNATSListen = "127.0.0.1:4222"

var natsServerSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "listen"}, {Name: "jetstream"}, {Name: "store_dir"}, {Name: "auth"}}}

func decodeNATSServer(b *hcl.Block, ectx *hcl.EvalContext, dataDir string) (*NATSServer, hcl.Diagnostics) {
	ns := &NATSServer{Listen: DefaultNATSListen, Auth: NATSAuthNKeys, DefRange: b.DefRange}
	content, diags := b.Body.Content(natsServerSchema)
	if a := content.Attributes["listen"]; a != nil {
		s, ok, d := evalNonEmpty(a, ectx)
		diags = append(diags, d...)
		if ok {
			ns.Listen = s
			err := CheckListenAddress(s)
			if _, port, _ := net.SplitHostPort(s); err == nil && port == "0" {
				// The server takes port 0 for its default, 4222.
				err = fmt.Errorf("%q: port 0 would listen on NATS's default port, 4222; name the port", s)
			}
			if bad := addressDiag(a, err); bad != nil {
				diags = append(diags, bad)
			}
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
	if a := content.Attributes["auth"]; a != nil {
		s, ok, d := evalNonEmpty(a, ectx)
		diags = append(diags, d...)
		ns.AuthRange = a.Expr.Range()
		switch {
		case !ok:
		case s == NATSAuthNKeys || s == NATSAuthNone:
			ns.Auth = s
		default:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError, Summary: "Invalid nats_server auth",
				Detail:  fmt.Sprintf("auth is %q or %q, not %q.", NATSAuthNKeys, NATSAuthNone, s),
				Subject: a.Expr.Range().Ptr(),
			})
		}
		if ns.Auth == NATSAuthNone {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning, Summary: "Embedded NATS server without authentication",
				Detail: fmt.Sprintf("With auth = %q, anyone who can connect to %s can read every security event, publish forged events "+
					"into the stream and delete it. Leave auth unset to get generated credentials (an agent user and a read-only reader).",
					NATSAuthNone, ns.Listen),
				Subject: a.Expr.Range().Ptr(),
			})
		}
	}
	if ns.StoreDir == "" {
		ns.StoreDir = filepath.Join(dataDir, "nats")
	}
	return ns, diags
}
