package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/sluice-dev/sluice/config"
)

// The embedded NATS server's credentials: two NKey users the agent makes at
// its first start and keeps under <data_dir>/nats-auth (0700, seeds 0600):
//
//   - agent.nk: the agent's own sinks; may do anything.
//   - reader.nk: for `sluice subscribe` and other consumers; may subscribe,
//     and call the JetStream API a consumer needs (stream and consumer info,
//     create, fetch, ack), but not publish events nor change or delete
//     streams.
//
// An NKey seed file is what `nats --nkey FILE` and nats.NkeyOptionFromSeed
// read.
const (
	natsAuthDir         = "nats-auth"
	natsAgentSeedName   = "agent.nk"
	natsReaderSeedName  = "reader.nk"
	natsCredentialsMode = 0o600
)

// NATSAgentSeedFile is where the embedded server's agent credentials live
// under dataDir.
func NATSAgentSeedFile(dataDir string) string {
	return filepath.Join(dataDir, natsAuthDir, natsAgentSeedName)
}

// NATSReaderSeedFile is where the embedded server's read-only credentials
// live under dataDir: what `sluice subscribe` uses when run as the agent's
// user.
func NATSReaderSeedFile(dataDir string) string {
	return filepath.Join(dataDir, natsAuthDir, natsReaderSeedName)
}

// natsCredentials are the public keys of the two users.
type natsCredentials struct {
	agent, reader string
}

// loadNATSCredentials reads the two seeds under dataDir, making them first
// when they do not exist yet.
func loadNATSCredentials(dataDir string, log *slog.Logger) (*natsCredentials, error) {
	dir := filepath.Join(dataDir, natsAuthDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("make nats credentials directory: %w", err)
	}
	// A directory made by an older version or by hand keeps out others.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restrict nats credentials directory: %w", err)
	}
	var creds natsCredentials
	for _, u := range []struct {
		name string
		pub  *string
	}{{natsAgentSeedName, &creds.agent}, {natsReaderSeedName, &creds.reader}} {
		pub, err := loadOrCreateSeed(filepath.Join(dir, u.name), log)
		if err != nil {
			return nil, err
		}
		*u.pub = pub
	}
	return &creds, nil
}

// loadOrCreateSeed returns the public key of the user seed in path, making
// the seed when the file does not exist.
func loadOrCreateSeed(path string, log *slog.Logger) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return "", fmt.Errorf("make nats credentials: %w", err)
		}
		seed, _ := kp.Seed()
		pub, _ := kp.PublicKey()
		if err := writeSeed(path, seed); err != nil {
			return "", err
		}
		log.Info("made credentials for the embedded nats server", "file", path)
		return pub, nil
	}
	if err != nil {
		return "", fmt.Errorf("read nats credentials: %w", err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		log.Warn("nats credentials are readable by others; restricting them to the owner", "file", path, "mode", st.Mode().Perm())
		if err := os.Chmod(path, natsCredentialsMode); err != nil {
			return "", fmt.Errorf("restrict nats credentials %s: %w", path, err)
		}
	}
	kp, err := nkeys.FromSeed(bytes.TrimSpace(data))
	if err != nil {
		return "", fmt.Errorf("read nats credentials %s: not an nkey seed (remove the file to make new ones): %w", path, err)
	}
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return "", fmt.Errorf("read nats credentials %s: not a user nkey seed (remove the file to make new ones)", path)
	}
	return pub, nil
}

// writeSeed writes a seed file atomically with owner-only permissions; a
// file another agent made meanwhile wins.
func writeSeed(path string, seed []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".seed-*")
	if err != nil {
		return fmt.Errorf("write nats credentials: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(natsCredentialsMode); err == nil {
		_, err = tmp.Write(append(seed, '\n'))
		if err == nil {
			err = tmp.Sync()
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path) // fails if the file exists
		if errors.Is(err, fs.ErrExist) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("write nats credentials %s: %w", path, err)
	}
	return nil
}

// nkeyUsers are the server's users for creds.
func (c *natsCredentials) nkeyUsers() []*server.NkeyUser {
	return []*server.NkeyUser{
		{Nkey: c.agent}, // no permissions: everything
		{Nkey: c.reader, Permissions: readerPermissions()},
	}
}

// readerPermissions lets a consumer read: subscribe to anything, and
// publish only the JetStream API requests and acknowledgements a consumer
// sends. It cannot publish an event, nor create, change, purge or delete a
// stream or a message in one.
func readerPermissions() *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			"$JS.API.INFO",
			"$JS.API.STREAM.NAMES",
			"$JS.API.STREAM.LIST",
			"$JS.API.STREAM.INFO.*",
			"$JS.API.STREAM.MSG.GET.*",
			"$JS.API.DIRECT.GET.>",
			"$JS.API.CONSUMER.CREATE.>",
			"$JS.API.CONSUMER.DURABLE.CREATE.>",
			"$JS.API.CONSUMER.INFO.>",
			"$JS.API.CONSUMER.NAMES.>",
			"$JS.API.CONSUMER.LIST.>",
			"$JS.API.CONSUMER.MSG.NEXT.>",
			"$JS.API.CONSUMER.DELETE.>",
			"$JS.ACK.>",
			"$JS.FC.>",
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{">"}},
	}
}

// targetsEmbedded reports whether a sink's server URL list (comma
// separated) points at the embedded server listening on listen.
func targetsEmbedded(urls, listen string) bool {
	lhost, lport, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	for _, raw := range strings.Split(urls, ",") {
		raw = strings.TrimSpace(raw)
		if !strings.Contains(raw, "://") {
			raw = "nats://" + raw
		}
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		port := u.Port()
		if port == "" {
			port = "4222"
		}
		if port != lport {
			continue
		}
		host := u.Hostname()
		if host == lhost || isLoopback(host) && (isLoopback(lhost) || isUnspecified(lhost)) {
			return true
		}
	}
	return false
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isUnspecified(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// embeddedNATSAuth returns the seed file a NATS sink uses: the agent's own
// credentials when the sink writes to the embedded server with generated
// credentials and sets no authentication of its own.
func embeddedNATSAuth(cfg *config.File, n *config.NATSSink) string {
	ns := cfg.Agent.NATSServer
	if ns == nil || ns.Auth != config.NATSAuthNKeys {
		return ""
	}
	if n.User != "" || n.Token != "" || n.NKeySeedFile != "" || n.CredsFile != "" {
		return ""
	}
	if !targetsEmbedded(n.URL, ns.Listen) {
		return ""
	}
	return NATSAgentSeedFile(cfg.Agent.DataDir)
}

// embeddedControlAuth is a's control connection, with the agent's own
// credentials when it points at the embedded server (generated
// credentials) and sets none of its own: a single machine may keep its
// control buckets on the bus it already runs.
func embeddedControlAuth(a config.Agent) *config.ControlNATS {
	c := a.Control.NATS
	ns := a.NATSServer
	if ns == nil || ns.Auth != config.NATSAuthNKeys || c.User != "" || c.Token != "" || c.NKeySeedFile != "" || c.CredsFile != "" || !targetsEmbedded(c.URL, ns.Listen) {
		return c
	}
	withAuth := *c
	withAuth.NKeySeedFile = NATSAgentSeedFile(a.DataDir)
	return &withAuth
}
