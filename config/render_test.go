package config

import (
	"bytes"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
)

// TestRendererMatchesHCL: the linear renderer writes what hcl's
// DiagnosticTextWriter writes, for the golden inputs and for the shapes
// they lack (context ranges, empty and multi-line ranges, CRLF, unknown
// files, color and wrapping).
func TestRendererMatchesHCL(t *testing.T) {
	p := NewParser()
	var diags hcl.Diagnostics
	paths, _ := filepath.Glob(filepath.Join("testdata", "diags", "*.hcl"))
	for _, path := range paths {
		_, ds := p.ParseFile(path)
		diags = append(diags, ds...)
	}
	src := "agent {\r\n  name = \"a\"\r\n}\r\nsource \"gadget\" \"x\" {\n  gadget = \"trace_exec\"\n  params = {\n    a = 1\n  }\n}\n"
	p.ParseSource("crlf.hcl", []byte(src))
	at := func(startByte, startLine, endByte, endLine int) *hcl.Range {
		return &hcl.Range{Filename: "crlf.hcl", Start: hcl.Pos{Byte: startByte, Line: startLine, Column: 1}, End: hcl.Pos{Byte: endByte, Line: endLine, Column: 2}}
	}
	long := strings.Repeat("a detail long enough to be wrapped at a hundred columns ", 4)
	diags = append(diags,
		&hcl.Diagnostic{Severity: hcl.DiagError, Summary: "empty", Detail: "d", Subject: at(12, 2, 12, 2)},
		&hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "multi-line", Detail: long, Subject: at(10, 2, 40, 5)},
		&hcl.Diagnostic{Severity: hcl.DiagError, Summary: "with context", Subject: at(60, 6, 66, 6), Context: at(30, 4, 100, 9)},
		&hcl.Diagnostic{Severity: hcl.DiagError, Summary: "line start", Subject: at(0, 1, 9, 2)},
		&hcl.Diagnostic{Severity: hcl.DiagError, Summary: "end of file", Subject: at(len(src)-1, 10, len(src), 10)},
		&hcl.Diagnostic{Severity: hcl.DiagError, Summary: "no file", Subject: &hcl.Range{Filename: "gone.hcl", Start: hcl.Pos{Line: 3, Column: 1}}},
		&hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "no subject", Detail: "none"},
	)
	for _, color := range []bool{false, true} {
		var width uint
		if color {
			width = 100
		}
		var want, got bytes.Buffer
		hw := hcl.NewDiagnosticTextWriter(&want, p.files, width, color)
		r := newRenderer(&got, p.files, width, color)
		for _, d := range diags {
			if d.Subject != nil {
				fmt.Fprintf(&want, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
			}
			if err := hw.WriteDiagnostic(d); err != nil {
				t.Fatal(err)
			}
			if err := r.write(d); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff(want.String(), got.String()); diff != "" {
			t.Errorf("color=%v: output differs from hcl's (-hcl +ours):\n%s", color, diff)
		}
	}
}

// unusedSources is a config of n sources no pipeline uses (a warning each)
// and one that runs.
func unusedSources(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "source \"gadget\" \"s%d\" { gadget = \"trace_exec\" }\n", i)
	}
	b.WriteString(minimalPipeline)
	return b.Bytes()
}

// TestRenderingIsLinear renders every warning of two configs, one eight
// times the other; hcl's writer took 64 times as long (8,000 warnings: 915
// s), a linear renderer about 8 times. Ratios within one run, the best of
// five interleaved rounds each, so that a busy machine blurs both alike.
func TestRenderingIsLinear(t *testing.T) {
	type setup struct {
		p     *Parser
		diags hcl.Diagnostics
		best  time.Duration
	}
	prepare := func(n int) *setup {
		p := NewParser()
		_, diags := p.ParseSource("many.hcl", unusedSources(n))
		if len(diags) != n {
			t.Fatalf("%d diagnostics; want %d warnings", len(diags), n)
		}
		return &setup{p: p, diags: diags, best: time.Duration(1 << 62)}
	}
	small, large := prepare(1000), prepare(8000)
	for range 5 {
		for _, s := range []*setup{small, large} {
			// Start each round with the garbage of earlier tests and rounds
			// collected, so that a collection lands in neither by chance.
			runtime.GC()
			start := time.Now()
			r := newRenderer(&bytes.Buffer{}, s.p.files, 0, false)
			for _, d := range s.diags {
				r.write(d)
			}
			s.best = min(s.best, time.Since(start))
		}
	}
	ratio := float64(large.best) / float64(small.best)
	t.Logf("1000 warnings: %v; 8000: %v; ratio %.1f", small.best, large.best, ratio)
	if ratio > 32 {
		t.Errorf("8x the warnings took %.1fx the time: rendering is not linear", ratio)
	}
}

func TestWriteDiagnosticsCapped(t *testing.T) {
	p := NewParser()
	src := append(unusedSources(8000), "sink \"stdout\" \"x\" { format = \"bogus\" }\n"...)
	_, diags := p.ParseSource("many.hcl", src)
	var out bytes.Buffer
	start := time.Now()
	if err := p.WriteDiagnostics(&out, diags, false); err != nil {
		t.Fatal(err)
	}
	t.Logf("rendered %d diagnostics in %v", len(diags), time.Since(start))
	text := out.String()
	if n := strings.Count(text, ": Warning: ") + strings.Count(text, ": Error: "); n != MaxRenderedDiagnostics {
		t.Errorf("rendered %d diagnostics; want %d", n, MaxRenderedDiagnostics)
	}
	// The one error comes first, though it is last in the file.
	if !strings.HasPrefix(text, "many.hcl:8008:") || !strings.Contains(text[:200], "Error:") {
		t.Errorf("output does not start with the error:\n%.300s", text)
	}
	if want := "...and 7,952 more warnings, not shown.\n"; !strings.HasSuffix(text, want) {
		t.Errorf("output ends %q; want %q", text[max(0, len(text)-80):], want)
	}
	for _, c := range []struct {
		errs, warns int
		want        string
	}{
		{1, 0, "...and 1 more error, not shown.\n"},
		{2, 1, "...and 2 more errors and 1 more warning, not shown.\n"},
		{1234567, 0, "...and 1,234,567 more errors, not shown.\n"},
	} {
		if got := moreLine(c.errs, c.warns); got != c.want {
			t.Errorf("moreLine(%d, %d) = %q; want %q", c.errs, c.warns, got, c.want)
		}
	}
}

// TestDiagnosticsEscapeControlCharacters: a config line (or a value quoted
// in a detail) holding an escape sequence is printed escaped.
func TestDiagnosticsEscapeControlCharacters(t *testing.T) {
	p := NewParser()
	_, diags := p.ParseSource("evil.hcl", []byte("agent {\n  log_level = \"\x1b]0;owned\x07\x1b[2J\"\n}\n"+minimalPipeline))
	diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "from a guest \x1b[8m", Detail: "line one\n\tline two \x1b[2J\u202e"})
	for _, color := range []bool{false, true} {
		var out bytes.Buffer
		if err := p.WriteDiagnostics(&out, diags, color); err != nil {
			t.Fatal(err)
		}
		text := out.String()
		if color {
			// Our own color codes are the only escapes.
			for _, code := range []string{"\x1b[31m", "\x1b[0m", "\x1b[1;4m"} {
				text = strings.ReplaceAll(text, code, "")
			}
		}
		for _, c := range text {
			if (c < 0x20 && c != '\n' && c != '\t') || c == '\u202e' {
				t.Fatalf("color=%v: raw control character %U in:\n%q", color, c, out.String())
			}
		}
		if !strings.Contains(text, `\x1b]0;owned\x07\x1b[2J`) || !strings.Contains(text, "line one\n\tline two") {
			t.Errorf("color=%v: want the sequences escaped and the detail's lines kept:\n%s", color, text)
		}
	}
}
