package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/sluice-dev/sluice/config"
)

// validateNATSFiles reads the credential and TLS files of every NATS sink
// and of the control connection as the NATS client will when it connects,
// and reports what it would refuse at the attribute naming the file: a
// file that is missing, a creds file without a JWT and seed, a seed that
// is not a user's, a CA file without a certificate, a certificate and key
// that are not a pair. Nothing is kept: a reload reads them again.
//
// A file this process may not read is a warning, not an error: validation
// often runs as an operator while the agent reads its credentials as root.
func validateNATSFiles(cfg *config.File) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, s := range cfg.Sinks {
		if s.NATS != nil {
			diags = append(diags, checkNATSFiles(&s.NATS.NATSAuth, fmt.Sprintf("sink %q", s.Name))...)
		}
	}
	if c := cfg.Agent.Control; c != nil && c.NATS != nil {
		diags = append(diags, checkNATSFiles(&c.NATS.NATSAuth, "the control connection")...)
	}
	return diags
}

func checkNATSFiles(a *config.NATSAuth, owner string) hcl.Diagnostics {
	files := a.Files()
	contents := map[string][]byte{}
	readErrs := map[string]error{}
	for _, f := range files {
		contents[f.Attr], readErrs[f.Attr] = os.ReadFile(f.Path)
	}
	var diags hcl.Diagnostics
	for _, f := range files {
		err := readErrs[f.Attr]
		if err == nil {
			err = checkNATSFile(f.Attr, contents, readErrs, a.KeyFile)
		}
		if err != nil {
			diags = append(diags, natsFileDiag(f, owner, err))
		}
	}
	return diags
}

// checkNATSFile checks the content of the file attr names, which was read.
func checkNATSFile(attr string, contents map[string][]byte, readErrs map[string]error, keyFile string) error {
	b := contents[attr]
	switch attr {
	case "nkey_seed_file":
		return checkUserSeed(b)
	case "creds_file":
		token, err := nkeys.ParseDecoratedJWT(b)
		if err == nil {
			_, err = jwt.DecodeUserClaims(token)
		}
		if err != nil {
			return fmt.Errorf("no user JWT in it: %w", err)
		}
		return checkUserSeed(b)
	case "ca_file":
		if !x509.NewCertPool().AppendCertsFromPEM(b) {
			return errors.New("it holds no PEM certificate")
		}
	case "cert_file":
		if _, ok := readErrs["key_file"]; !ok || readErrs["key_file"] != nil {
			return nil // the key is missing (the config says so) or unreadable (reported)
		}
		if _, err := tls.X509KeyPair(b, contents["key_file"]); err != nil {
			return fmt.Errorf("with key_file %s, not a certificate and its key: %w", keyFile, err)
		}
	}
	return nil
}

// checkUserSeed reports what the NATS client would refuse in a file that
// must hold a user's NKey seed (on its own, or decorated in a creds file).
func checkUserSeed(b []byte) error {
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return fmt.Errorf("no NKey seed in it: %w", err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil {
		return fmt.Errorf("no NKey seed in it: %w", err)
	}
	if !nkeys.IsValidPublicUserKey(pub) {
		return errors.New("the NKey seed in it is not a user's (its public key does not start with U)")
	}
	return nil
}

func natsFileDiag(f config.NATSFile, owner string, err error) *hcl.Diagnostic {
	d := &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Unusable NATS credentials",
		Detail:   fmt.Sprintf("%s of %s: %v.", f.Attr, owner, err),
		Subject:  rangePtr(f.Range),
	}
	switch f.Attr {
	case "ca_file", "cert_file", "key_file":
		d.Summary = "Unusable TLS file"
	}
	if errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
		d.Severity = hcl.DiagWarning
		d.Summary = "File not checked"
		d.Detail = fmt.Sprintf("%s of %s: %v. This process (uid %d) may not read it; the agent must.", f.Attr, owner, err, os.Geteuid())
	}
	return d
}
