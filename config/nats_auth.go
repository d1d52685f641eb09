package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// NATSAuth is how a NATS client authenticates and secures its
// connection: at most one of user/password, token, nkey seed file and
// creds file, and TLS. The NATS sink and the agent's control connection
// share it, and its attributes.
type NATSAuth struct {
	User, Password, Token   string
	NKeySeedFile, CredsFile string
	CAFile, CertFile        string
	KeyFile                 string
	// The ranges of the file attributes' values, for diagnostics about
	// the files.
	NKeySeedFileRange, CredsFileRange        hcl.Range
	CAFileRange, CertFileRange, KeyFileRange hcl.Range
}

// NATSFile is a file a NATS client reads: a credential or a TLS file.
type NATSFile struct {
	// Attr is the attribute naming it: nkey_seed_file, creds_file,
	// ca_file, cert_file or key_file.
	Attr string
	Path string
	// Range covers the attribute's value.
	Range hcl.Range
}

// Files returns the files a's attributes name, in a fixed order.
func (a *NATSAuth) Files() []NATSFile {
	var out []NATSFile
	for _, f := range []NATSFile{
		{"nkey_seed_file", a.NKeySeedFile, a.NKeySeedFileRange}, {"creds_file", a.CredsFile, a.CredsFileRange},
		{"ca_file", a.CAFile, a.CAFileRange}, {"cert_file", a.CertFile, a.CertFileRange}, {"key_file", a.KeyFile, a.KeyFileRange},
	} {
		if f.Path != "" {
			out = append(out, f)
		}
	}
	return out
}

// natsAuthAttrs are the authentication attributes of a block with a
// NATSAuth; its TLS settings are a `tls {}` block (natsTLSSchema).
var natsAuthAttrs = []hcl.AttributeSchema{
	{Name: "user"}, {Name: "password"}, {Name: "token"},
	{Name: "nkey_seed_file"}, {Name: "creds_file"},
}

var natsTLSSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "ca_file"}, {Name: "cert_file"}, {Name: "key_file"}}}

// decodeNATSAuth decodes the authentication attributes of content into a.
func decodeNATSAuth(content *hcl.BodyContent, ectx *hcl.EvalContext, a *NATSAuth) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, f := range []struct {
		name string
		dst  *string
		rng  *hcl.Range
	}{{"user", &a.User, nil}, {"password", &a.Password, nil}, {"token", &a.Token, nil},
		{"nkey_seed_file", &a.NKeySeedFile, &a.NKeySeedFileRange}, {"creds_file", &a.CredsFile, &a.CredsFileRange}} {
		if attr := content.Attributes[f.name]; attr != nil {
			var ds hcl.Diagnostics
			*f.dst, _, ds = evalNonEmptyOr(attr, ectx, *f.dst)
			diags = append(diags, ds...)
			if f.rng != nil {
				*f.rng = attr.Expr.Range()
			}
		}
	}
	return diags
}

// decodeNATSTLS decodes a `tls {}` block into a.
func decodeNATSTLS(b *hcl.Block, ectx *hcl.EvalContext, a *NATSAuth) hcl.Diagnostics {
	content, diags := b.Body.Content(natsTLSSchema)
	for _, f := range []struct {
		name string
		dst  *string
		rng  *hcl.Range
	}{{"ca_file", &a.CAFile, &a.CAFileRange}, {"cert_file", &a.CertFile, &a.CertFileRange}, {"key_file", &a.KeyFile, &a.KeyFileRange}} {
		if attr := content.Attributes[f.name]; attr != nil {
			var ds hcl.Diagnostics
			*f.dst, _, ds = evalNonEmptyOr(attr, ectx, *f.dst)
			diags = append(diags, ds...)
			if f.rng != nil {
				*f.rng = attr.Expr.Range()
			}
		}
	}
	return diags
}

// checkNATSAuth allows one authentication method, a password only with a
// user, and a client certificate only with its key. what names the block
// in messages ("a NATS sink").
func checkNATSAuth(content *hcl.BodyContent, a *NATSAuth, tlsRange hcl.Range, what string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	var first *hcl.Attribute
	for _, name := range []string{"user", "token", "nkey_seed_file", "creds_file"} {
		attr := content.Attributes[name]
		if attr == nil {
			continue
		}
		if first == nil {
			first = attr
			continue
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Conflicting NATS authentication",
			Detail:   fmt.Sprintf("%q and %q are both set; %s authenticates one way: user/password, token, nkey_seed_file or creds_file.", first.Name, attr.Name, what),
			Subject:  attr.NameRange.Ptr(),
		})
	}
	if attr := content.Attributes["password"]; attr != nil && a.User == "" {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Password without user",
			Detail: "password is set but user is not.", Subject: attr.NameRange.Ptr()})
	}
	if (a.CertFile == "") != (a.KeyFile == "") {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Incomplete client certificate",
			Detail: "tls needs both cert_file and key_file for a client certificate (ca_file alone verifies the server).", Subject: tlsRange.Ptr()})
	}
	return diags
}
