// Package podmantest runs real containers for tests: Podman with runc, a
// busybox image imported from a local directory (no registry), and
// Podman's Docker-compatible API served on a unix socket.
//
// Everything lives under a temporary directory (storage, run state, the
// socket, a containers.conf), so tests neither read nor change the host's
// Podman configuration, and concurrent test binaries do not meet. The
// packages it needs (podman, runc, busybox-static) are installed by
// .ci/containers.sh; without them Start skips the test, or fails it when
// SLUICE_REQUIRE_BPF=1 (CI), like every privileged test.
package podmantest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testutil"
)

// Image is the reference of the busybox image Start imports.
const Image = "localhost/sluice-busybox:test"

// containersConf makes Podman work on hosts like CI's: runc (crun refuses
// some cgroup layouts), no default ulimits (raising them needs
// CAP_SYS_RESOURCE), cgroupfs (no systemd as init), events in a file (no
// journald), and no network stack unless a test asks for one.
const containersConf = `[containers]
default_ulimits = []
netns = "none"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
`

// Podman is a Podman instance private to a test binary.
type Podman struct {
	dir    string
	env    []string
	Socket string // the Docker-compatible API's unix socket
	svc    *exec.Cmd
}

var (
	once     sync.Once
	shared   *Podman
	startErr error
)

// Start returns the test binary's Podman, setting it up on first use (the
// image import and the API service take a second or two). Call Stop from
// TestMain, or leave the temporary directory to the OS.
func Start(t testing.TB) *Podman {
	t.Helper()
	testutil.RequireRoot(t, "run containers with podman")
	for _, tool := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			require(t, fmt.Sprintf("%s is not installed (bash .ci/containers.sh installs it)", tool))
		}
	}
	if _, err := os.Stat(busybox); err != nil {
		require(t, "busybox-static is not installed (bash .ci/containers.sh installs it)")
	}
	once.Do(func() { shared, startErr = start() })
	if startErr != nil {
		t.Fatalf("start podman: %v", startErr)
	}
	return shared
}

func require(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("SLUICE_REQUIRE_BPF") == "1" {
		t.Fatalf("SLUICE_REQUIRE_BPF=1 but %s", reason)
	}
	t.Skip(reason)
}

const busybox = "/bin/busybox"

func start() (*Podman, error) {
	dir, err := os.MkdirTemp("", "sluice-podman-")
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(conf, []byte(containersConf), 0o644); err != nil {
		return nil, err
	}
	p := &Podman{
		dir:    dir,
		env:    append(os.Environ(), "CONTAINERS_CONF="+conf),
		Socket: filepath.Join(dir, "podman.sock"),
	}
	if err := p.importImage(); err != nil {
		return nil, err
	}
	p.svc = exec.Command("podman", append(p.globalArgs(), "system", "service", "--time=0", "unix://"+p.Socket)...)
	p.svc.Env = p.env
	var logs testutil.SyncBuffer
	p.svc.Stdout, p.svc.Stderr = &logs, &logs
	// The service must not outlive a test binary that dies without Stop:
	// the parent-death signal follows the thread that started it, so that
	// thread is kept for the life of the process.
	p.svc.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives until the process ends
		err := p.svc.Start()
		started <- err
		if err == nil {
			p.svc.Wait()
		}
		select {}
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start podman system service: %w", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("unix", p.Socket)
		if err == nil {
			c.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			p.svc.Process.Kill()
			return nil, fmt.Errorf("podman system service did not listen on %s within 20s: %s", p.Socket, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *Podman) globalArgs() []string {
	return []string{
		"--root", filepath.Join(p.dir, "root"),
		"--runroot", filepath.Join(p.dir, "run"),
		"--tmpdir", filepath.Join(p.dir, "tmp"),
		// vfs: plain directories, nothing mounted on the host to clean up.
		"--storage-driver", "vfs",
		"--cgroup-manager", "cgroupfs",
		"--runtime", "runc",
	}
}

// importImage builds Image from a directory holding busybox-static and its
// applet links, with podman import: no registry involved.
func (p *Podman) importImage() error {
	rootfs := filepath.Join(p.dir, "rootfs")
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return err
		}
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		return err
	}
	for _, applet := range []string{"sh", "sleep", "cat", "echo", "true", "false", "ls", "wget", "nc", "nslookup", "mount", "id"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", applet)); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc", "passwd"), []byte("root:x:0:0:root:/:/bin/sh\n"), 0o644); err != nil {
		return err
	}
	tarball := filepath.Join(p.dir, "rootfs.tar")
	if out, err := exec.Command("tar", "-C", rootfs, "-cf", tarball, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("tar rootfs: %v: %s", err, out)
	}
	_, err = p.Run(context.Background(), "import", "--change", "CMD=/bin/sh", tarball, Image)
	return err
}

// Run runs a podman command against this instance and returns its
// standard output, trimmed.
func (p *Podman) Run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "podman", append(p.globalArgs(), args...)...)
	cmd.Env = p.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("podman %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Container is a running test container.
type Container struct {
	ID, Name string
	PID      int // its init process, on the host
}

// RunContainer starts a detached container called name from Image,
// running cmd (default: sleep until removed), with extra podman run
// flags (labels, say), and removes it when the test ends.
func (p *Podman) RunContainer(t testing.TB, name string, flags []string, cmd ...string) *Container {
	t.Helper()
	if len(cmd) == 0 {
		cmd = []string{"sleep", "3600"}
	}
	args := append([]string{"run", "-d", "--name", name}, flags...)
	args = append(args, Image)
	args = append(args, cmd...)
	id, err := p.Run(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Run(context.Background(), "rm", "-f", "-t", "0", id) })
	pid, err := p.Run(context.Background(), "inspect", "--format", "{{.State.Pid}}", id)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		t.Fatalf("container %s has no pid (%q)", name, pid)
	}
	return &Container{ID: id, Name: name, PID: n}
}

// Exec runs cmd inside a running container and returns its output.
func (p *Podman) Exec(t testing.TB, c *Container, cmd ...string) string {
	t.Helper()
	out, err := p.Run(context.Background(), append([]string{"exec", c.ID}, cmd...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Stop removes every container and stops the API service. Safe to call
// when Start never ran.
func Stop() {
	if shared == nil {
		return
	}
	shared.Run(context.Background(), "rm", "-a", "-f", "-t", "0")
	if shared.svc != nil && shared.svc.Process != nil {
		shared.svc.Process.Kill() // reaped by the goroutine that started it
	}
	if err := os.RemoveAll(shared.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(os.Stderr, "podmantest: remove %s: %v\n", shared.dir, err)
	}
}
