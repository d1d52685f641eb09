#!/usr/bin/env bash
# Rebuilds the committed built-in stages from their sources:
#   stages/<name>/main.c   -> stages/<name>.wasm  (C SDK, clang-19)
#   stages/<name>/main.go  -> stages/<name>.wasm  (Go SDK, GOOS=wasip1)
#   stages/<name>/main.rs  -> stages/<name>.wasm  (Rust SDK, Debian's rustc)
#
# The output is byte-for-byte reproducible for a given toolchain: Go builds
# use -trimpath and no VCS stamp; C builds strip debug info, so no path of
# the checkout or of the temporary sysroot ends up in a module.
#
#   bash stages/build.sh          rebuild in place
#   bash stages/build.sh --check  rebuild into a temporary directory
#                                          and fail if a committed module differs
#
# Runs as root on a fresh Debian 12; installs clang-19, lld-19, wasi-libc and
# the wasm32 compiler-rt builtins with apt when they are missing, and for
# Rust stages Debian's rustc (1.63) with its wasm32-wasi standard library
# and lld-14 (rust-lld), through sdk/rust/build.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
export PATH=$PATH:/usr/local/go/bin
GO=${GO:-go}

builtins=/usr/lib/llvm-19/lib/clang/19/lib/wasi/libclang_rt.builtins-wasm32.a
ensure_c_toolchain() {
	local need=()
	command -v clang-19 >/dev/null || need+=(clang-19)
	command -v wasm-ld-19 >/dev/null || need+=(lld-19)
	[ -f /usr/lib/wasm32-wasi/libc.a ] || need+=(wasi-libc)
	[ -f "$builtins" ] || need+=(libclang-rt-19-dev-wasm32)
	[ ${#need[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "build.sh: missing ${need[*]}; run as root or install them" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
		apt-get update
	fi
	if ! apt-get install -y --no-install-recommends "${need[@]}"; then
		apt-get update
		apt-get install -y --no-install-recommends "${need[@]}"
	fi
}

check=0
[ "${1:-}" = "--check" ] && check=1
out_dir=$here
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ $check -eq 1 ] && out_dir=$tmp/out && mkdir -p "$out_dir"

# Debian ships wasi-libc under the triple wasm32-wasi; clang-19 looks for
# wasm32-wasip1 (the same ABI under its current name): a throwaway sysroot
# points one at the other.
sysroot=$tmp/sysroot
mkdir -p "$sysroot/include" "$sysroot/lib"
ln -s /usr/include/wasm32-wasi "$sysroot/include/wasm32-wasip1"
ln -s /usr/lib/wasm32-wasi "$sysroot/lib/wasm32-wasip1"

# -mbulk-memory: memcpy and memset become memory.copy and memory.fill,
# which wazero runs as one native copy, instead of wasi-libc's byte loops
# (uid-to-user copies each event it enriches).
cc_wasm() { # cc_wasm <dir> <source> <out>: compile a C guest from within its directory
	(cd "$1" && clang-19 --target=wasm32-wasip1 --sysroot="$sysroot" -mexec-model=reactor -mbulk-memory \
		-O2 -Wall -Wextra -Werror -Wno-unused-function -Wno-unused-parameter -nodefaultlibs \
		-Wl,--strip-debug -o "$3" "$2" -lc "$builtins")
}

build_c() { cc_wasm "$here/$1" main.c "$out_dir/$1.wasm"; } # build_c <name>

build_rs() { # build_rs <name>
	bash "$root/sdk/rust/build.sh" "$here/$1/main.rs" "$out_dir/$1.wasm"
}

build_go() { # build_go <name>
	(cd "$root" && GOOS=wasip1 GOARCH=wasm GOFLAGS= CGO_ENABLED=0 "$GO" build -buildmode=c-shared \
		-trimpath -buildvcs=false -ldflags='-s -w' -o "$out_dir/$1.wasm" "./stages/$1")
}

ensure_c_toolchain # the C SDK's test guest is always built

stale=0
for d in "$here"/*/; do
	name=$(basename "$d")
	if [ -f "$d/main.c" ]; then
		build_c "$name"
	elif [ -f "$d/main.go" ]; then
		build_go "$name"
	elif [ -f "$d/main.rs" ]; then
		build_rs "$name"
	else
		continue
	fi
	chmod 644 "$out_dir/$name.wasm"
	if [ $check -eq 1 ] && ! cmp -s "$out_dir/$name.wasm" "$here/$name.wasm"; then
		echo "build.sh: stages/$name.wasm is stale: regenerate it with make stages" >&2
		stale=1
	fi
done

# The C SDK's test guest lives beside the SDK.
sdk_guest=$root/sdk/c/testdata/sdk_guest
cc_wasm "$root/sdk/c/testdata" sdk_guest.c "$out_dir/sdk_guest.wasm"
chmod 644 "$out_dir/sdk_guest.wasm"
if [ $check -eq 1 ]; then
	if ! cmp -s "$out_dir/sdk_guest.wasm" "$sdk_guest.wasm"; then
		echo "build.sh: sdk/c/testdata/sdk_guest.wasm is stale: regenerate it with make stages" >&2
		stale=1
	fi
else
	mv "$out_dir/sdk_guest.wasm" "$sdk_guest.wasm"
fi

if [ $check -eq 1 ]; then
	[ $stale -eq 0 ] && echo "build.sh: all stages up to date"
	exit $stale
fi
