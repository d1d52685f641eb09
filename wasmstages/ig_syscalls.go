package wasmstages

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Syscall declarations for getSyscallDeclaration, read as IG reads them:
// from the format of the syscall's sys_enter tracepoint in tracefs.

// igSyscallDecl is IG's struct syscallDeclaration: name[32], nrParams u8,
// 3 bytes of padding, params[6] of {name[32], flags u32}; little endian.
const (
	igSyscallNameLen   = 32
	igSyscallMaxParams = 6
	igSyscallParamSize = igSyscallNameLen + 4
	igSyscallDeclSize  = igSyscallNameLen + 4 + igSyscallMaxParams*igSyscallParamSize
	igParamIsPointer   = 1
)

// tracefsRoots are where tracefs may be mounted.
var tracefsRoots = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

var syscallDecls sync.Map // name -> []byte or error

// syscallDeclaration returns IG's encoded declaration of syscall name.
func syscallDeclaration(name string) ([]byte, error) {
	if v, ok := syscallDecls.Load(name); ok {
		if err, bad := v.(error); bad {
			return nil, err
		}
		return v.([]byte), nil
	}
	b, err := readSyscallDeclaration(name)
	if err != nil {
		syscallDecls.Store(name, err)
		return nil, err
	}
	syscallDecls.Store(name, b)
	return b, nil
}

func readSyscallDeclaration(name string) ([]byte, error) {
	if name == "" || len(name) >= igSyscallNameLen || strings.ContainsAny(name, "/.") {
		return nil, fmt.Errorf("syscall declaration %q: not a syscall name", name)
	}
	var format []byte
	var err error
	for _, root := range tracefsRoots {
		format, err = os.ReadFile(filepath.Join(root, "events", "syscalls", "sys_enter_"+name, "format"))
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("syscall declaration %q: no sys_enter_%s tracepoint in tracefs: %w", name, name, err)
	}
	params, err := parseSyscallFormat(format)
	if err != nil {
		return nil, fmt.Errorf("syscall declaration %q: %w", name, err)
	}
	out := make([]byte, igSyscallDeclSize)
	copy(out, name)
	out[igSyscallNameLen] = byte(len(params))
	for i, p := range params {
		at := igSyscallNameLen + 4 + i*igSyscallParamSize
		copy(out[at:at+igSyscallNameLen-1], p.name)
		if p.pointer {
			binary.LittleEndian.PutUint32(out[at+igSyscallNameLen:], igParamIsPointer)
		}
	}
	return out, nil
}

type syscallParam struct {
	name    string
	pointer bool
}

// parseSyscallFormat reads the arguments of a sys_enter tracepoint's
// format: the fields after the common ones and __syscall_nr, such as
// "field:const char * filename;	offset:24;	size:8;	signed:0;".
func parseSyscallFormat(format []byte) ([]syscallParam, error) {
	var params []syscallParam
	sc := bufio.NewScanner(bytes.NewReader(format))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		decl, ok := strings.CutPrefix(line, "field:")
		if !ok {
			continue
		}
		decl, _, _ = strings.Cut(decl, ";")
		i := strings.LastIndexAny(decl, " *")
		if i < 0 {
			continue
		}
		name := decl[i+1:]
		if strings.HasPrefix(name, "common_") || name == "__syscall_nr" {
			continue
		}
		if len(params) == igSyscallMaxParams {
			return nil, fmt.Errorf("more than %d arguments", igSyscallMaxParams)
		}
		params = append(params, syscallParam{name: name, pointer: strings.Contains(decl[:i+1], "*")})
	}
	return params, sc.Err()
}
