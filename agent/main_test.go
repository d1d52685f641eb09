package agent

import (
	"os"
	"testing"

	"github.com/sluice-dev/sluice/internal/podmantest"
	"github.com/sluice-dev/sluice/internal/testutil"
)

func TestMain(m *testing.M) {
	// The load generator of the stage swap tests is this binary.
	testutil.RunOpenLoopIfAsked()
	code := m.Run()
	// The container tests' Podman (internal/podmantest), if they ran.
	podmantest.Stop()
	os.Exit(code)
}
