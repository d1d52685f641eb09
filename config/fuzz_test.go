package config

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseConfig decodes arbitrary config text and renders its
// diagnostics, as `sluice config validate` does with a file it was handed:
// decoding must end in a File or diagnostics (no panic, no stack overflow,
// no runaway), every diagnostic's subject must lie in the source, and the
// rendering must be bounded and free of raw control characters. Seeds: the
// built-in default, the valid examples and every diagnostics golden input.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(Default))
	for _, pattern := range []string{"testdata/valid/*.hcl", "testdata/diags/*.hcl"} {
		paths, _ := filepath.Glob(pattern)
		for _, p := range paths {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		p := NewParser()
		file, diags := p.ParseSource("fuzz.hcl", src)
		if file == nil {
			t.Fatal("ParseSource returned no File")
		}
		for _, d := range diags {
			if s := d.Subject; s != nil && s.Filename == "fuzz.hcl" && (s.Start.Byte < 0 || s.Start.Byte > len(src) || s.End.Byte < s.Start.Byte) {
				t.Fatalf("diagnostic %q has a subject outside the source: %v", d.Summary, s)
			}
		}
		for _, color := range []bool{false, true} {
			var out bytes.Buffer
			if err := p.WriteDiagnostics(&out, diags, color); err != nil {
				t.Fatal(err)
			}
			// Bounded: at most MaxRenderedDiagnostics, each with a few
			// clipped snippet lines, whatever the input's size.
			if limit := 64<<10 + 40*len(src); out.Len() > limit {
				t.Fatalf("%d diagnostics rendered as %d bytes", len(diags), out.Len())
			}
			if !color {
				for _, c := range out.String() {
					if (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f {
						t.Fatalf("raw control character %U in the rendering", c)
					}
				}
			}
		}
	})
}
