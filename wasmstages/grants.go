package wasmstages

import (
	"fmt"

	"github.com/tetratelabs/wazero"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"

	"github.com/sluice-dev/sluice/internal/jail"
)

// jailGrants mounts each directory grant as a jail (package
// internal/jail): every path the guest names is resolved beneath the
// granted directory, so no symbolic link, "..", hard link or race leads
// out of it. wazero's own DirFS follows links wherever they point.
func (s *Stage) jailGrants(dirs []Dir) (wazero.FSConfig, error) {
	fs := wazero.NewFSConfig()
	for _, d := range dirs {
		root, err := jail.Open(d.Host)
		if err != nil {
			return nil, fmt.Errorf("grant directory %s as %s: %w", d.Host, d.Guest, err)
		}
		s.jails = append(s.jails, root)
		var mount experimentalsys.FS = root
		if !d.Writable {
			mount = &sysfs.ReadFS{FS: root}
		}
		fs = fs.(sysfs.FSConfig).WithSysFSMount(mount, d.Guest)
	}
	return fs, nil
}

// closeJails releases the grant roots; the instances that used them are
// closed already.
func (s *Stage) closeJails() {
	for _, j := range s.jails {
		j.Close()
	}
	s.jails = nil
}
