package config

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/diags/*.golden from the current output")

// TestDiagnosticsGolden renders the diagnostics of every
// testdata/diags/*.hcl and compares them with the .golden beside it.
func TestDiagnosticsGolden(t *testing.T) {
	t.Setenv("SLUICE_TEST_UNSET_VARIABLE", "")
	os.Unsetenv("SLUICE_TEST_UNSET_VARIABLE")

	paths, err := filepath.Glob(filepath.Join("testdata", "diags", "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no testdata/diags/*.hcl files")
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".hcl")
		t.Run(name, func(t *testing.T) {
			p := NewParser()
			_, diags := p.ParseFile(path)
			if len(diags) == 0 {
				t.Fatal("got no diagnostics; every file in testdata/diags must produce some")
			}
			for _, d := range diags {
				if d.Subject == nil || d.Subject.Filename != path || d.Subject.Start.Line == 0 {
					t.Errorf("diagnostic %q has no subject range in %s: %v", d.Summary, path, d.Subject)
				}
			}
			var buf bytes.Buffer
			if err := p.WriteDiagnostics(&buf, diags, false); err != nil {
				t.Fatal(err)
			}
			testutil.Golden(t, strings.TrimSuffix(path, ".hcl")+".golden", buf.Bytes(), *update, "go test ./config -update")
		})
	}
}
