package agent

import (
	"os"
	"testing"

	"github.com/sluice-dev/sluice/internal/testutil"
)

func TestMain(m *testing.M) {
	// The load generator of the stage swap tests is this binary.
	testutil.RunOpenLoopIfAsked()
	os.Exit(m.Run())
}
