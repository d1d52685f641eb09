package jail_test

import (
	"os"

	"golang.org/x/sys/unix"
)

func mkfifo(p string) error { return unix.Mkfifo(p, 0o644) }

// exchange swaps two names atomically (renameat2 RENAME_EXCHANGE), so the
// name under attack is never missing; a plain rename where the file system
// lacks it.
func exchange(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_EXCHANGE)
	if err == unix.EINVAL || err == unix.ENOSYS {
		return os.Rename(from, to)
	}
	return err
}
