package testutil

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// tagMarker precedes the version byte of wasmstages/testdata/tag_patchable.wasm.
var tagMarker = []byte("sluice-tag-version:")

// PatchTagVersion returns a copy of tag_patchable.wasm (the module bytes)
// that stamps version (1 to 127) into the events it passes: a new module
// version, with a new digest, made without a compiler.
func PatchTagVersion(module []byte, version byte) ([]byte, error) {
	if version == 0 || version > 127 {
		return nil, fmt.Errorf("patch tag version: %d is not from 1 to 127", version)
	}
	i := bytes.Index(module, tagMarker)
	if i < 0 || bytes.Index(module[i+1:], tagMarker) >= 0 {
		return nil, fmt.Errorf("patch tag version: the module does not hold the marker %q exactly once", tagMarker)
	}
	out := bytes.Clone(module)
	out[i+len(tagMarker)] = version
	return out, nil
}

// WithCustomSection returns module with a custom section appended: the
// same code under another digest (runtimes ignore custom sections), for
// tests that need distinct versions of one module or a compilation cache
// that has not seen it. An empty payload becomes one zero byte (wazero
// refuses an empty one).
func WithCustomSection(module []byte, name string, payload []byte) []byte {
	if len(payload) == 0 {
		payload = []byte{0}
	}
	var body []byte
	body = binary.AppendUvarint(body, uint64(len(name)))
	body = append(body, name...)
	body = append(body, payload...)
	out := bytes.Clone(module)
	out = append(out, 0) // section id 0: custom
	out = binary.AppendUvarint(out, uint64(len(body)))
	return append(out, body...)
}
