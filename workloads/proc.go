package workloads

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"
)

// procFS reads what the resolver needs about processes.
type procFS struct {
	proc       string // "/proc"
	cgroupRoot string // where cgroup v2 is mounted; "" when it is not
}

func newProcFS(proc, cgroupRoot string) *procFS {
	if proc == "" {
		proc = "/proc"
	}
	if cgroupRoot == "" {
		cgroupRoot = cgroup2Mount(proc)
	}
	return &procFS{proc: proc, cgroupRoot: cgroupRoot}
}

// mntNS returns the inode number of pid's mount namespace.
func (p *procFS) mntNS(pid int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("%s/%d/ns/mnt", p.proc, pid), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// cgroupPath returns pid's cgroup v2 path (the "0::" line of
// /proc/PID/cgroup).
func (p *procFS) cgroupPath(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/cgroup", p.proc, pid))
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if path, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return path, nil
		}
	}
	return "", fmt.Errorf("process %d has no cgroup v2 path", pid)
}

// cgroupID returns the id of the cgroup v2 group at path (its directory's
// inode number, what bpf_get_current_cgroup_id returns).
func (p *procFS) cgroupID(path string) (uint64, error) {
	if p.cgroupRoot == "" {
		return 0, fmt.Errorf("cgroup v2 is not mounted")
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(p.cgroupRoot, path), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// CgroupID returns the cgroup v2 id of a group given by its path, absolute
// or relative to the cgroup v2 mount, for cgroup filters.
func CgroupID(path string) (uint64, error) {
	p := newProcFS("", "")
	if filepath.IsAbs(path) && p.cgroupRoot != "" && strings.HasPrefix(path, p.cgroupRoot) {
		path = strings.TrimPrefix(path, p.cgroupRoot)
	}
	return p.cgroupID(path)
}

// containerIDPattern finds a 64-hex container id in a cgroup path element.
var containerIDPattern = regexp.MustCompile(`^(?:docker-|libpod-|cri-containerd-|crio-)?([0-9a-f]{64})(?:\.scope)?$`)

// containerIDFromCgroup returns the id of the container a cgroup path
// belongs to, by the runtimes' naming: the last path element that is an
// id, alone or as docker-<id>.scope, libpod-<id>, cri-containerd-<id>.scope
// or crio-<id>.scope. Podman's conmon (libpod-conmon-<id>) is not in the
// container and does not match.
func containerIDFromCgroup(path string) string {
	elems := strings.Split(path, "/")
	for i := len(elems) - 1; i >= 0; i-- {
		if m := containerIDPattern.FindStringSubmatch(elems[i]); m != nil {
			return m[1]
		}
	}
	return ""
}

// cgroup2Mount finds where cgroup v2 is mounted, from mountinfo.
func cgroup2Mount(proc string) string {
	b, err := os.ReadFile(proc + "/self/mountinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if ok && strings.HasPrefix(post, "cgroup2 ") {
			if f := strings.Fields(pre); len(f) > 4 {
				return f[4]
			}
		}
	}
	return ""
}
