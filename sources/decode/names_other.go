//go:build !amd64

package decode

import "golang.org/x/sys/unix"

const largeFile = unix.O_LARGEFILE
