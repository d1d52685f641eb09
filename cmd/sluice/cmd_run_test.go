package main

import "testing"

// TestSourceName: `sluice run` names its one source after the gadget: a
// built-in's name, an ELF's base name without .bpf.o, an image's last
// repository element without its tag or digest.
func TestSourceName(t *testing.T) {
	for _, c := range []struct{ gadget, want string }{
		{"trace_exec", "trace_exec"},
		{"./gadgets/trace_open.bpf.o", "trace_open"},
		{"/abs/dir/my.o", "my"},
		{"localhost:5000/gadgets/trace_exec:v1", "trace_exec"},
		{"oci://localhost:5000/gadgets/trace_exec:v1", "trace_exec"},
		{"ghcr.io/org/x@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "x"},
		{"registry.example.com:443/a/b/c:1.0@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "c"},
		{"localhost/solo:latest", "solo"},
		{".bpf.o", "gadget"},
	} {
		if got := sourceName(c.gadget); got != c.want {
			t.Errorf("sourceName(%q) = %q, want %q", c.gadget, got, c.want)
		}
	}
}
