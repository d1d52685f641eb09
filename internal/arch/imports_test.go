package arch

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/sluice-dev/sluice/"

// rule is what one package may depend on. Sluice packages are named
// without the module prefix; a name ending in "/..." stands for the folder
// and everything below it.
type rule struct {
	// imports are the sluice packages it may import directly.
	imports []string
	// notDeps are modules it must not depend on, even indirectly.
	notDeps []string
}

// Libraries that touch the kernel, run Wasm, speak NATS or move OCI
// images; the packages that need none of them stay free of them, so that
// config can be checked without privileges and the data path's packages
// know each other only through pipeline.
var (
	ebpf   = "github.com/cilium/ebpf"
	wazero = "github.com/tetratelabs/wazero"
	nats   = "github.com/nats-io/"
	oras   = "oras.land/oras-go"
	hcl    = "github.com/hashicorp/hcl"
)

// The rules of ARCHITECTURE.md ("What may import what"). A package missing
// here fails the test: add it, and its place in ARCHITECTURE.md.
var rules = map[string]rule{
	// The wiring: every component, never the CLI.
	"agent":      {imports: []string{"config", "pipeline/...", "sources/...", "wasmstages", "wasmbpf", "sinks", "workloads", "oci/...", "gadgets", "stages", "internal/kallsyms", "internal/syscalls", "internal/termsafe"}},
	"cmd/sluice": {imports: []string{"agent", "config", "pipeline/...", "sources/...", "wasmstages", "wasmbpf", "sinks", "workloads", "oci/...", "gadgets", "stages", "internal/kallsyms", "internal/syscalls", "internal/termsafe"}},
	// Pure: HCL in, values and diagnostics out; shares the pipeline's
	// defaults and value sets.
	"config": {imports: []string{"pipeline/...", "internal/termsafe"}, notDeps: []string{ebpf, wazero, nats, oras}},
	// The runtime between components, which it knows by interfaces.
	"pipeline":       {imports: []string{"pipeline/codec"}, notDeps: []string{ebpf, wazero, nats, oras, hcl}},
	"pipeline/codec": {notDeps: []string{ebpf, wazero, nats, oras, hcl}},
	// The components: each knows pipeline, never another component, with
	// one exception: wasmbpf, a source type, loads its applications' eBPF
	// objects with sources' parser and loader.
	"sources":        {imports: []string{"pipeline/...", "sources/decode", "sources/eventtype", "sources/internal/kernelbtf", "gadgets", "internal/kallsyms", "internal/syscalls"}, notDeps: []string{wazero, nats, oras, hcl}},
	"sources/decode": {imports: []string{"pipeline/...", "sources/internal/kernelbtf", "internal/syscalls"}, notDeps: []string{wazero, nats, oras, hcl}},
	// The kernel's BTF, parsed on demand and freed after a while unused.
	"sources/internal/kernelbtf": {notDeps: []string{wazero, nats, oras, hcl}},
	"sources/eventtype":          {notDeps: []string{wazero, nats, oras, hcl}},
	"wasmstages":                 {imports: []string{"pipeline/...", "internal/interrupt", "internal/jail", "internal/kallsyms", "internal/syscalls", "internal/termsafe"}, notDeps: []string{ebpf, nats, oras, hcl}},
	"wasmbpf":                    {imports: []string{"pipeline/...", "sources/...", "internal/interrupt", "internal/jail", "internal/termsafe"}, notDeps: []string{nats, oras, hcl}},
	"sinks":                      {imports: []string{"pipeline/...", "internal/termsafe"}, notDeps: []string{ebpf, wazero, oras, hcl}},
	"workloads":                  {imports: []string{"pipeline/..."}, notDeps: []string{ebpf, wazero, nats, oras, hcl}},
	"oci":                        {imports: []string{"oci/sign"}, notDeps: []string{ebpf, wazero, nats, hcl}},
	"oci/sign":                   {notDeps: []string{ebpf, wazero, nats, hcl}},
	// Leaves.
	"gadgets":            {},
	"stages":             {},
	"internal/kallsyms":  {},
	"internal/syscalls":  {},
	"internal/termsafe":  {},
	"internal/interrupt": {},
	"internal/jail":      {notDeps: []string{ebpf, nats, oras, hcl}},
	// Guest code (GOOS=wasip1): the SDK and the stages written with it.
	"sdk/go/sluice":          {imports: []string{"pipeline/codec"}},
	"stages/drop-comm-go":    {imports: []string{"sdk/go/sluice"}},
	"stages/ocsf-go":         {imports: []string{"sdk/go/sluice"}},
	"stages/rate-limit":      {imports: []string{"sdk/go/sluice"}},
	"stages/redact":          {imports: []string{"sdk/go/sluice"}},
	"stages/uid-to-user-go":  {imports: []string{"sdk/go/sluice"}},
	"internal/tools/mkimage": {},
	"internal/tools/sbom":    {},
	"bench/openloop":         {},
	// The end-to-end benchmark: drives the agent binary, and beside it a
	// bare ring buffer reader, that reader rendering with sluice's decoder
	// and encoder (rawcodec), and the sinks' JetStream publishing alone.
	"bench/sluicebench": {imports: []string{"internal/synth", "pipeline/...", "sources", "sources/decode", "sinks"}},
	// The synthetic producer's driver (getpgid bursts), for the benchmark
	// and the tests that need a load heavier than real syscalls make.
	"internal/synth": {notDeps: []string{ebpf, wazero, nats, oras, hcl}},
	// Test helpers: only tests import them (no rule lists them above).
	"internal/testutil":     {},
	"internal/natstest":     {},
	"internal/podmantest":   {imports: []string{"internal/testutil"}},
	"internal/registrytest": {imports: []string{"oci/..."}},
	// Packages of tests only.
	"deploy":        {},
	"security":      {},
	"internal/arch": {},
}

type goPackage struct {
	ImportPath string
	Imports    []string
	Deps       []string
	Error      *struct{ Err string }
}

// TestImportRules reads the import graph of every package (its non-test
// files, as the binary is built) and checks it against rules.
func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages; expected the whole module", len(pkgs))
	}
	for _, p := range pkgs {
		name := strings.TrimPrefix(p.ImportPath, module)
		r, ok := rules[name]
		if !ok {
			t.Errorf("package %s has no import rule: add it to ARCHITECTURE.md (the package map and what may import what) and to rules in %s", name, "internal/arch/imports_test.go")
			continue
		}
		for _, imp := range p.Imports {
			dep, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			if !allowed(r.imports, dep) {
				t.Errorf("%s imports %s, which ARCHITECTURE.md does not allow (%s may import: %s)", name, dep, name, orNothing(r.imports))
			}
		}
		for _, banned := range r.notDeps {
			// One message per library: the first of its packages.
			if i := slices.IndexFunc(p.Deps, func(dep string) bool { return strings.HasPrefix(dep, banned) }); i >= 0 {
				t.Errorf("%s depends on %s (through %s); ARCHITECTURE.md keeps it free of %s", name, p.Deps[i], via(pkgs, p, p.Deps[i]), banned)
			}
		}
	}
}

func allowed(patterns []string, pkg string) bool {
	for _, p := range patterns {
		if base, ok := strings.CutSuffix(p, "/..."); ok {
			if pkg == base || strings.HasPrefix(pkg, base+"/") {
				return true
			}
		} else if pkg == p {
			return true
		}
	}
	return false
}

func orNothing(s []string) string {
	if len(s) == 0 {
		return "no sluice package"
	}
	return strings.Join(s, ", ")
}

// via names the direct import of p that brings dep in, for the message.
func via(pkgs map[string]*goPackage, p *goPackage, dep string) string {
	var out []string
	for _, imp := range p.Imports {
		if imp == dep {
			return "a direct import"
		}
		if q := pkgs[imp]; q != nil && slices.Contains(q.Deps, dep) {
			out = append(out, strings.TrimPrefix(imp, module))
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func listPackages(t *testing.T) map[string]*goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,Deps,Error", module+"...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]*goPackage{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Error != nil && !strings.Contains(p.Error.Err, "build constraints exclude all Go files") {
			t.Errorf("go list %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs[p.ImportPath] = &p
	}
	return pkgs
}
