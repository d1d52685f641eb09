package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestFileFuncBounded: file() reads regular files of at most
// MaxFileFuncBytes; a device that never ends, a FIFO that would block, a
// directory or a file too large are errors at the call.
func TestFileFuncBounded(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("a"), MaxFileFuncBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	justRight := filepath.Join(dir, "ok")
	if err := os.WriteFile(justRight, bytes.Repeat([]byte("b"), MaxFileFuncBytes), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{"/dev/zero", "not a regular file (a character device)"},
		{fifo, "not a regular file (a FIFO)"},
		{dir, "not a regular file (a directory)"},
		{big, fmt.Sprintf("more than the %d allowed", MaxFileFuncBytes)},
	} {
		t.Run(filepath.Base(c.path), func(t *testing.T) {
			_, diags := Parse("f.hcl", []byte(fmt.Sprintf("agent { name = file(%q) }\n", c.path)+minimalPipeline))
			if !diags.HasErrors() || !strings.Contains(diags.Error(), c.want) {
				t.Fatalf("diagnostics = %v; want an error saying %q", diags, c.want)
			}
			if d := diags[0]; d.Subject == nil || d.Subject.Start.Line != 1 {
				t.Errorf("diagnostic at %v; want the file() call", d.Subject)
			}
		})
	}
	f, diags := Parse("f.hcl", []byte(fmt.Sprintf("agent { data_dir = file(%q) }\n", justRight)+minimalPipeline))
	if diags.HasErrors() || len(f.Agent.DataDir) != MaxFileFuncBytes {
		t.Errorf("a file of exactly the limit: %v", diags)
	}
}

func TestConfigFileBounded(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.hcl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.hcl")
	if err := os.WriteFile(big, append(bytes.Repeat([]byte("# padding\n"), MaxConfigBytes/10), minimalPipeline...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/dev/zero", fifo, big} {
		if _, diags := NewParser().ParseFile(path); !diags.HasErrors() || !strings.Contains(diags.Error(), "config file") {
			t.Errorf("ParseFile(%s) = %v; want it refused", path, diags)
		}
	}
}

// TestDeepNestingRefused: nesting and operator chains that would overflow
// the parser's or the evaluator's stack (a fatal error, not a panic) are a
// diagnostic at the token past the limit.
func TestDeepNestingRefused(t *testing.T) {
	const n = 100_000
	for _, c := range []struct{ name, expr, want string }{
		{"tuples", strings.Repeat("[", n) + strings.Repeat("]", n), "nested too deeply"},
		{"parentheses", strings.Repeat("(", n) + "1" + strings.Repeat(")", n), "nested too deeply"},
		{"objects", strings.Repeat("{a = ", n) + "1" + strings.Repeat("}", n), "nested too deeply"},
		{"templates", strings.Repeat(`"${`, n) + "1" + strings.Repeat(`}"`, n), "nested too deeply"},
		{"negations", strings.Repeat("!", 20*n) + "true", "nested too deeply"},
		// Chains of 2,000,000 operators overflowed the stack; past the
		// limit is enough to show the refusal (lexing millions of tokens
		// takes seconds).
		{"additions", strings.Repeat("1 + ", 2*MaxOperators) + "1", "Expression too long"},
		{"additions over lines", "(" + strings.Repeat("1 +\n", 2*MaxOperators) + "1)", "Expression too long"},
		{"conditionals", strings.Repeat(`true ? "a" : `, MaxOperators) + `"b"`, "Expression too long"},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := "agent {\n  name = " + c.expr + "\n}\n" + minimalPipeline
			p := NewParser()
			_, diags := p.ParseSource("deep.hcl", []byte(src))
			if !diags.HasErrors() || !strings.Contains(diags[0].Summary, c.want) {
				t.Fatalf("diagnostics = %v; want %q", diags, c.want)
			}
			if s := diags[0].Subject; s == nil || s.Filename != "deep.hcl" || s.Start.Line < 2 {
				t.Errorf("diagnostic at %v; want a position in the expression", s)
			}
			var out bytes.Buffer
			if err := p.WriteDiagnostics(&out, diags, false); err != nil {
				t.Fatal(err)
			}
			if out.Len() > 4096 {
				t.Errorf("the diagnostic renders as %d bytes; want the long line clipped", out.Len())
			}
		})
	}
	// Nesting within the limits parses.
	// (the agent block, join( and flatten( are three levels)
	within := strings.Repeat("[", MaxNesting-3) + strings.Repeat("]", MaxNesting-3)
	if _, diags := Parse("ok.hcl", []byte("agent {\n  name = join(\"\", flatten("+within+"))\n}\n"+minimalPipeline)); strings.Contains(diags.Error(), "too deeply") {
		t.Errorf("nesting of %d refused: %v", MaxNesting, diags)
	}
}

func TestAgentNameRefusesWhitespaceAndControls(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{`   `, "only whitespace"},
		{`\t`, "only whitespace"},
		{` node`, "starts or ends with whitespace"},
		{`node\u001b[31m`, "control character U+001B"},
		{`node\nfake log line`, "control character U+000A"},
		{`node\u202eevil`, "control character U+202E"},
		{`node\u0085x`, "control character U+0085"},
		{strings.Repeat("n", MaxAgentNameBytes+1), "longer than"},
	} {
		_, diags := Parse("n.hcl", []byte(fmt.Sprintf("agent {\n  name = \"%s\"\n}\n", c.name)+minimalPipeline))
		if !diags.HasErrors() || !strings.Contains(diags.Error(), c.want) {
			t.Errorf("name %q: %v; want an error saying %q", c.name, diags, c.want)
		}
	}
	for _, ok := range []string{"node-a", "node_a.example.com", "Knoten-ä", strings.Repeat("n", MaxAgentNameBytes)} {
		if f, diags := Parse("n.hcl", []byte(fmt.Sprintf("agent {\n  name = %q\n}\n", ok)+minimalPipeline)); diags.HasErrors() || f.Agent.Name != ok {
			t.Errorf("name %q refused: %v", ok, diags)
		}
	}
}

// TestMaxProcsBounds: agent { max_procs } is a number of CPUs, 1 to 1024;
// 0 or a negative or huge count is an error at the attribute.
func TestMaxProcsBounds(t *testing.T) {
	for _, c := range []struct {
		value string
		want  int
		err   string
	}{
		{"1", 1, ""},
		{"1024", 1024, ""},
		{"0", 0, "positive"},
		{"-2", 0, "positive"},
		{"1025", 0, "from 1 to 1024"},
	} {
		t.Run(c.value, func(t *testing.T) {
			f, diags := Parse("f.hcl", []byte("agent {\n  max_procs = "+c.value+"\n}\n"+minimalPipeline))
			if c.err == "" {
				if diags.HasErrors() {
					t.Fatalf("max_procs = %s: %v", c.value, diags)
				}
				if f.Agent.MaxProcs != c.want {
					t.Fatalf("max_procs = %s: MaxProcs %d, want %d", c.value, f.Agent.MaxProcs, c.want)
				}
				return
			}
			if !diags.HasErrors() || !strings.Contains(diags.Error(), c.err) || !strings.Contains(diags.Error(), "f.hcl:2,") {
				t.Fatalf("max_procs = %s: diagnostics %v; want an error at f.hcl:2 saying %q", c.value, diags, c.err)
			}
		})
	}
}
