package gadgets

import (
	"os"
	"path/filepath"
	"testing"
)

// pending are the gadgets of pending/: written, compiled and tested
// against the kernel, not built in until sluice's sources run their kind
// (iterators, map iterators, socket filters).
var pending = []string{"profile_blockio", "snapshot_process", "snapshot_socket", "top_file", "top_tcp", "trace_dns"}

// lookupAny returns a built-in, or a pending gadget read from its folder.
func lookupAny(t *testing.T, name string) Builtin {
	t.Helper()
	if b, ok := Lookup(name); ok {
		return b
	}
	obj, err := os.ReadFile(filepath.Join("pending", name, "program.bpf.o"))
	if err != nil {
		t.Fatalf("no built-in or pending gadget %s: %v", name, err)
	}
	md, err := os.ReadFile(filepath.Join("pending", name, "gadget.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return Builtin{Name: name, Object: obj, Metadata: md}
}

// allGadgets lists the built-ins and the pending gadgets.
func allGadgets(t *testing.T) []Builtin {
	t.Helper()
	out := Builtins()
	for _, name := range pending {
		out = append(out, lookupAny(t, name))
	}
	return out
}

// TestPendingFolders keeps the list above and pending/ in step.
func TestPendingFolders(t *testing.T) {
	srcs, err := filepath.Glob("pending/*/program.bpf.c")
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != len(pending) {
		t.Errorf("pending/ holds %v, the test knows %v", srcs, pending)
	}
	for _, name := range pending {
		if _, ok := Lookup(name); ok {
			t.Errorf("%s is both built in and pending", name)
		}
		if _, err := os.Stat(filepath.Join("pending", name, "README.md")); err != nil {
			t.Error(err)
		}
	}
}
