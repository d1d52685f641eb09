package sinks

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
)

// ClientOptions returns the nats.go options that authenticate a connection
// as o says (user/password, token, NKey seed file or creds file) and set up
// its TLS (a CA to verify the server, a client certificate). The sink
// connects with them, and so do `sluice subscribe`, `sluice rollout` and
// the agent's control connection (agent.ControlConnectOptions), so that
// every client takes the same credentials the same way. It fails when
// more than one authentication method is set or a file cannot be read.
func (o NATSOptions) ClientOptions() ([]nats.Option, error) {
	var opts []nats.Option
	auths := 0
	if o.User != "" {
		auths++
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.Token != "" {
		auths++
		opts = append(opts, nats.Token(o.Token))
	}
	if o.NKeySeedFile != "" {
		auths++
		opt, err := nats.NkeyOptionFromSeed(o.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("read nkey seed file: %w", err)
		}
		opts = append(opts, opt)
	}
	if o.CredsFile != "" {
		auths++
		if _, err := os.Stat(o.CredsFile); err != nil {
			return nil, fmt.Errorf("read creds file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if auths > 1 {
		return nil, errors.New("set only one of user/password, token, nkey_seed_file and creds_file")
	}
	if o.CAFile != "" || o.CertFile != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("read CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("CA file %s holds no PEM certificate", o.CAFile)
			}
			cfg.RootCAs = pool
		}
		if o.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("load client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, nats.Secure(cfg))
	}
	return opts, nil
}
