//go:build !linux

package wasmstages

import (
	"errors"
	"os/exec"
)

// asideSupported: no compile aside here, where the helper's priority is
// not set.
const asideSupported = false

func asideExecutable() string    { return "" }
func startAside(*exec.Cmd) error { return errors.New("not supported on this system") }
func currentNice() int           { return 0 }
func raiseAside(int) error       { return errors.New("not supported on this system") }
