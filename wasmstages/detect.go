package wasmstages

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// GadgetABI is the ABI a gadget's Wasm module is written against.
type GadgetABI uint8

const (
	// ABISluice is sluice's gadget-module ABI (sluice_abi_version,
	// gadget_init, ..., import module sluice_gadget): GadgetModule.
	ABISluice GadgetABI = iota + 1
	// ABIInspektorGadget is Inspektor Gadget's wasm API
	// (gadgetAPIVersion, gadgetInit, ..., import module ig): IGModule.
	ABIInspektorGadget
)

func (a GadgetABI) String() string {
	switch a {
	case ABISluice:
		return "sluice"
	case ABIInspektorGadget:
		return "Inspektor Gadget"
	}
	return "unknown"
}

// DetectGadgetABI tells which ABI a gadget's module is written against,
// from its exports (without compiling it): sluice_abi_version is sluice's,
// gadgetAPIVersion Inspektor Gadget's.
func DetectGadgetABI(module []byte) (GadgetABI, error) {
	names, err := exportNames(module)
	if err != nil {
		return 0, fmt.Errorf("read module exports: %w", err)
	}
	switch {
	case names["sluice_abi_version"]:
		return ABISluice, nil
	case names["gadgetAPIVersion"]:
		return ABIInspektorGadget, nil
	}
	return 0, fmt.Errorf("%w %d: a gadget module exports sluice_abi_version (sluice's gadget-module ABI) or gadgetAPIVersion (Inspektor Gadget's wasm API); this one exports neither", ErrABI, ABIVersion)
}

// exportNames reads the names of a module's exports from its export
// section.
func exportNames(b []byte) (map[string]bool, error) {
	if len(b) < 8 || string(b[:4]) != "\x00asm" {
		return nil, errors.New("not a WebAssembly module")
	}
	b = b[8:]
	for len(b) > 0 {
		id := b[0]
		size, n := binary.Uvarint(b[1:])
		if n <= 0 || uint64(len(b)-1-n) < size {
			return nil, errors.New("truncated section")
		}
		body := b[1+n : 1+n+int(size)]
		b = b[1+n+int(size):]
		if id != 7 { // the export section
			continue
		}
		count, n := binary.Uvarint(body)
		if n <= 0 {
			return nil, errors.New("bad export section")
		}
		body = body[n:]
		names := map[string]bool{}
		for range count {
			l, n := binary.Uvarint(body)
			if n <= 0 || uint64(len(body)-n) < l {
				return nil, errors.New("bad export name")
			}
			names[string(body[n:n+int(l)])] = true
			body = body[n+int(l):]
			if len(body) < 1 {
				return nil, errors.New("bad export entry")
			}
			_, n = binary.Uvarint(body[1:]) // kind, then index
			if n <= 0 {
				return nil, errors.New("bad export index")
			}
			body = body[1+n:]
		}
		return names, nil
	}
	return map[string]bool{}, nil
}
