package sinks

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
)

// NATSAuth is how a NATS client authenticates and secures its connection:
// at most one of user/password, token, NKey seed and creds file, and TLS (a
// CA to verify the server, a client certificate). It is the NATS sink's
// (the fields of NATSOptions of the same names) and the agent's control
// connection's.
type NATSAuth struct {
	User, Password string
	Token          string
	NKeySeedFile   string
	CredsFile      string
	CAFile         string
	CertFile       string
	KeyFile        string
}

// ConnectOptions returns the nats.Options that authenticate and secure a
// connection as a says. Files are read now, so that a missing one is an
// error here rather than a connection that keeps failing.
func (a NATSAuth) ConnectOptions() ([]nats.Option, error) {
	var o []nats.Option
	auths := 0
	if a.User != "" {
		auths++
		o = append(o, nats.UserInfo(a.User, a.Password))
	}
	if a.Token != "" {
		auths++
		o = append(o, nats.Token(a.Token))
	}
	if a.NKeySeedFile != "" {
		auths++
		opt, err := nats.NkeyOptionFromSeed(a.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("read nkey seed file: %w", err)
		}
		o = append(o, opt)
	}
	if a.CredsFile != "" {
		auths++
		if _, err := os.Stat(a.CredsFile); err != nil {
			return nil, fmt.Errorf("read creds file: %w", err)
		}
		o = append(o, nats.UserCredentials(a.CredsFile))
	}
	if auths > 1 {
		return nil, errors.New("set only one of user/password, token, nkey_seed_file and creds_file")
	}
	if a.CAFile != "" || a.CertFile != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if a.CAFile != "" {
			pem, err := os.ReadFile(a.CAFile)
			if err != nil {
				return nil, fmt.Errorf("read CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("CA file %s holds no PEM certificate", a.CAFile)
			}
			cfg.RootCAs = pool
		}
		if a.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(a.CertFile, a.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("load client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		o = append(o, nats.Secure(cfg))
	}
	return o, nil
}

// auth returns the sink's authentication settings.
func (o NATSOptions) auth() NATSAuth {
	return NATSAuth{User: o.User, Password: o.Password, Token: o.Token, NKeySeedFile: o.NKeySeedFile, CredsFile: o.CredsFile,
		CAFile: o.CAFile, CertFile: o.CertFile, KeyFile: o.KeyFile}
}
