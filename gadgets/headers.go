package gadgets

import (
	"embed"
	"io/fs"
)

//go:embed include
var includeFS embed.FS

// Headers is the gadget header tree that -I points at (sluice/gadget.h and
// the rest), so that `sluice image build` compiles a gadget folder that lives
// anywhere.
func Headers() fs.FS {
	sub, err := fs.Sub(includeFS, "include")
	if err != nil {
		// The embed pattern names the directory: a build defect.
		panic(err)
	}
	return sub
}
