// Package registrytest runs a real OCI registry (the CNCF distribution
// registry, in-process) on loopback for tests: filesystem storage in a
// temporary directory, optional htpasswd basic auth. A Registry is owned by
// the test that starts it and stops at the test's cleanup.
package registrytest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	// The storage driver and auth backend register themselves.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// Options configure a test registry.
type Options struct {
	// Users, when set, turns on htpasswd basic auth with these
	// user -> password pairs (bcrypt-hashed into an htpasswd file).
	Users map[string]string
}

// Registry is a running registry.
type Registry struct {
	// Host is host:port on 127.0.0.1, as references name it.
	Host string
	// StorageDir is the filesystem driver's root (for tampering tests).
	StorageDir string

	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	once sync.Once
}

var quietLogs sync.Once

// Start runs a registry until the test ends (or Stop).
func Start(t testing.TB, opts Options) *Registry {
	t.Helper()
	quietLogs.Do(func() { logrus.SetOutput(io.Discard) })
	dir := t.TempDir()
	storage := filepath.Join(dir, "storage")
	cfg := &configuration.Configuration{}
	cfg.Log.Level = "error"
	cfg.Log.AccessLog.Disabled = true
	cfg.Storage = configuration.Storage{
		"filesystem": configuration.Parameters{"rootdirectory": storage},
		"delete":     configuration.Parameters{"enabled": true},
		"cache":      configuration.Parameters{"blobdescriptor": "inmemory"},
	}
	if len(opts.Users) > 0 {
		var lines []string
		for u, p := range opts.Users {
			h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, u+":"+string(h))
		}
		path := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "sluice-test", "path": path}}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	app := handlers.NewApp(ctx, cfg)
	r := &Registry{Host: ln.Addr().String(), StorageDir: storage, ln: ln, done: make(chan struct{})}
	r.srv = &http.Server{Handler: app, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(r.done)
		r.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		r.Stop()
		cancel()
	})
	return r
}

// Stop shuts the registry down; afterwards its address refuses connections.
func (r *Registry) Stop() {
	r.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.srv.Shutdown(ctx)
		<-r.done
	})
}

// BlobPath is where the filesystem driver keeps the blob with the given
// sha256 hex digest.
func (r *Registry) BlobPath(hex string) string {
	return filepath.Join(r.StorageDir, "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex, "data")
}

// String is the host, for messages.
func (r *Registry) String() string { return fmt.Sprintf("registry %s", r.Host) }
