#!/usr/bin/env bash
# Rebuilds the committed test guests (*.wasm) of package wasmstages from the
# C files beside this script, with clang-19 for wasm32-wasip1 and Debian's
# wasi-libc. Run as root on a fresh Debian machine: missing packages are
# installed with apt. `make test-stages-wasm` runs it.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v clang-19 >/dev/null || need+=(clang-19)
command -v wasm-ld-19 >/dev/null || need+=(lld-19)
[ -f /usr/lib/wasm32-wasi/libc.a ] || need+=(wasi-libc)
builtins=/usr/lib/llvm-19/lib/clang/19/lib/wasi/libclang_rt.builtins-wasm32.a
[ -f "$builtins" ] || need+=(libclang-rt-19-dev-wasm32)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]}" >&2
	apt-get install -y "${need[@]}" >&2
fi

# Debian ships wasi-libc under the triple wasm32-wasi; clang-19 looks for
# wasm32-wasip1 (the same ABI under its current name), so point a throwaway
# sysroot at it.
sysroot=$(mktemp -d)
trap 'rm -rf "$sysroot"' EXIT
mkdir -p "$sysroot/include" "$sysroot/lib"
ln -s /usr/include/wasm32-wasi "$sysroot/include/wasm32-wasip1"
ln -s /usr/lib/wasm32-wasi "$sysroot/lib/wasm32-wasip1"

cc() {
	local out=$1
	shift
	# -mexec-model=reactor: a library with _initialize, no main.
	clang-19 --target=wasm32-wasip1 --sysroot="$sysroot" -mexec-model=reactor \
		-O2 -Wall -Wextra -Werror -Wno-unused-function -nodefaultlibs \
		-Wl,--strip-debug -o "$out" "$@" -lc "$builtins"
}

for src in filter trap loop spin bomb malformed abi_version missing_export init_fail process_error bad_import probe escape outbomb set; do
	cc "$src.wasm" "$src.c"
done
cc tag_v1.wasm -DTAG_VERSION=1 tag.c
cc tag_v2.wasm -DTAG_VERSION=2 tag.c
cc tag_patchable.wasm -DTAG_PATCHABLE tag.c
# A 16 MiB table built in sluice_init: the error it reports when malloc
# fails, and a variant that traps instead.
cc init_bomb.wasm init_bomb.c
cc init_bomb_trap.wasm -DTRAP_ON_OOM init_bomb.c
# A flat-map (several events per input, KEPT and EMITted) with tick output,
# for the identities of derived events (agent/derived_test.go).
cc flatmap.wasm flatmap.c
# Gadget modules (the gadget-module ABI, gadget.h): the module of
# gadgets/testdata/wasm_syscalls.bpf.o, and a variant that traps on arg1 = 7777.
cc gadget_syscalls.wasm gadget_syscalls.c
cc gadget_syscalls_trap.wasm -DTRAP_WHO=7777 gadget_syscalls.c
# A gadget module written with the C SDK (sdk/c/sluice.h, sdk/c/sluice_gadget.h).
cc gadget_sdk.wasm gadget_sdk.c
# Its twin written with the Rust SDK (sdk/rust), by Debian's rustc.
bash ../../sdk/rust/build.sh gadget_sdk_rs/main.rs gadget_sdk_rs.wasm
# An Inspektor Gadget module in C (IG's wasm API, ig.h): the C twin of
# ig_wasm_go, for gadgets/testdata/ig_wasm.bpf.o.
cc ig_wasm_c.wasm ig_wasm_c.c
# An IG module importing functions this host lacks.
cc ig_future.wasm ig_future.c

# The Go guest: the same filter against the raw ABI, with the Go runtime in
# it (the large module of the compilation-cache test).
export PATH="$PATH:/usr/local/go/bin"
(cd gofilter && GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -ldflags=-s -o ../gofilter.wasm .)
# Inspektor Gadget modules in Go (IG's wasm API through igapi): every host
# function (ig_check), the struct accessors and the containers data source
# (ig_struct), and the module of gadgets/testdata/ig_wasm.bpf.o.
for g in ig_check ig_struct ig_wasm_go; do
	(cd "$g" && GOOS=wasip1 GOARCH=wasm GOFLAGS= CGO_ENABLED=0 go build -buildmode=c-shared -trimpath -buildvcs=false -ldflags=-s -o "../$g.wasm" .)
done
