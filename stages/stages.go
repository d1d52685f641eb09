package stages

import (
	"embed"
	"slices"
	"strings"
)

//go:embed drop-comm.wasm uid-to-user.wasm redact.wasm rate-limit.wasm ocsf.wasm
var modules embed.FS

// Builtin returns the module of the built-in stage called name. The bytes
// are shared: do not modify them.
func Builtin(name string) ([]byte, bool) {
	if strings.ContainsAny(name, "/.") {
		return nil, false
	}
	b, err := modules.ReadFile(name + ".wasm")
	if err != nil {
		return nil, false
	}
	return b, true
}

// Names returns the names of the built-in stages, sorted.
func Names() []string {
	entries, _ := modules.ReadDir(".")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".wasm"))
	}
	slices.Sort(names)
	return names
}
