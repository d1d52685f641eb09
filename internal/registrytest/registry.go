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

	handler http.Handler
	mu      sync.Mutex
	srv     *http.Server
	done    chan struct{}
	stopped bool
	// requests counts requests by method and kind ("HEAD manifests",
	// "GET blobs", ...).
	requests map[string]int
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
	r := &Registry{Host: ln.Addr().String(), StorageDir: storage, requests: map[string]int{}}
	r.handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		kind := "other"
		for _, k := range []string{"manifests", "blobs", "tags", "referrers"} {
			if strings.Contains(req.URL.Path, "/"+k+"/") {
				kind = k
				break
			}
		}
		r.mu.Lock()
		r.requests[req.Method+" "+kind]++
		r.mu.Unlock()
		app.ServeHTTP(w, req)
	})
	r.serve(ln)
	t.Cleanup(func() {
		r.Stop()
		cancel()
	})
	return r
}

func (r *Registry) serve(ln net.Listener) {
	srv := &http.Server{Handler: r.handler, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	r.mu.Lock()
	r.srv, r.done, r.stopped = srv, done, false
	r.mu.Unlock()
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
}

// Stop shuts the registry down; afterwards its address refuses connections.
// Stopping a stopped registry does nothing.
func (r *Registry) Stop() {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.stopped = true
	srv, done := r.srv, r.done
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	<-done
}

// Restart serves a stopped registry again, on the same address, with the
// same content.
func (r *Registry) Restart(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", r.Host)
	if err != nil {
		t.Fatalf("restart %s: %v", r, err)
	}
	r.serve(ln)
}

// Requests returns how many requests of a method and kind the registry
// answered so far: kind is "manifests", "blobs", "tags", "referrers" or
// "other", as in Requests("HEAD", "manifests").
func (r *Registry) Requests(method, kind string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests[method+" "+kind]
}

// BlobPath is where the filesystem driver keeps the blob with the given
// sha256 hex digest.
func (r *Registry) BlobPath(hex string) string {
	return filepath.Join(r.StorageDir, "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex, "data")
}

// String is the host, for messages.
func (r *Registry) String() string { return fmt.Sprintf("registry %s", r.Host) }
