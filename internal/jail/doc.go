// Package jail is a directory grant that no path leaves: a wazero
// experimental sys.FS over one host directory (the grant root) in which
// every component of every path a guest names is resolved beneath the root.
//
// wazero's own DirFS joins the guest's path to the host directory and lets
// the kernel follow whatever symbolic links it meets, so a guest with a
// writable grant could plant `l -> ../../..` and read or write anywhere the
// agent can, and a read-only grant followed links already present. Here:
//
//   - The root is held open (O_PATH); paths are resolved relative to that
//     descriptor, never as strings joined to the host path, so there is no
//     window between a check and a use for a swapped-in link to exploit.
//   - Resolution uses openat2(2) with RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS
//     where the kernel has it (5.6+, and not filtered by seccomp); elsewhere
//     a user-space walk opens one component at a time with O_NOFOLLOW,
//     reads each link itself, refuses absolute targets and keeps its own
//     stack of directories for "..", which therefore never climbs above the
//     root. Both refuse a path that would leave the root with EPERM.
//   - Operations on a name rather than a file (lstat, unlink, rmdir, rename,
//     link, symlink, readlink, mkdir) resolve the parent directory beneath
//     the root and act on the last component with the *at system call, so
//     they never follow a link in the last component: link(2) hard-links a
//     symbolic link itself, never its target.
//   - Symlink refuses targets that are absolute or that would lead out of
//     the root from the link's directory, so a guest cannot leave a trap for
//     the host's own tools either. Links placed by others are harmless to
//     the guest: they are resolved beneath the root when used.
//   - Only regular files and directories open; FIFOs, devices and sockets
//     in a grant are refused (EACCES), because a guest blocked opening a
//     FIFO would sit in a system call no deadline can interrupt.
//
// What a grant does not change: a host process may still move a directory
// the guest is inside out of the root while it is resolving; that needs
// write access to the grant's parent, which the guest does not have. Bind
// mounts inside a grant are followed.
//
// An FS is safe for concurrent use; a File, like the wazero files it
// replaces, serves one guest instance. Close the FS when no instance uses
// it any more.
package jail
