#!/usr/bin/env bash
# Rebuilds the committed wasm-bpf test applications of package wasmbpf:
# each NAME.bpf.c with clang-19 -target bpf (as gadgets/build.sh builds the
# gadgets, stripped of DWARF), and each application NAME.c with clang-19
# --target=wasm32-wasip1 and Debian's wasi-libc, embedding its object with
# #embed. Run as root on a fresh Debian machine: missing packages are
# installed with apt. `make wasm-bpf-apps` runs it; `--check` rebuilds into
# a temporary directory and fails when a committed file differs.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v clang-19 >/dev/null || need+=(clang-19)
command -v wasm-ld-19 >/dev/null || need+=(lld-19)
command -v llvm-strip-19 >/dev/null || need+=(llvm-19)
[ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
[ -f /usr/lib/wasm32-wasi/libc.a ] || need+=(wasi-libc)
builtins=/usr/lib/llvm-19/lib/clang/19/lib/wasi/libclang_rt.builtins-wasm32.a
[ -f "$builtins" ] || need+=(libclang-rt-19-dev-wasm32)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y --no-install-recommends "${need[@]}" >&2 || { apt-get update >&2 && apt-get install -y --no-install-recommends "${need[@]}" >&2; }
fi

check=0
[ "${1:-}" = "--check" ] && check=1
out=.
if [ $check -eq 1 ]; then
	out=$(mktemp -d)
fi

# Debian ships wasi-libc under the triple wasm32-wasi; clang-19 looks for
# wasm32-wasip1 (the same ABI under its current name).
sysroot=$(mktemp -d)
trap 'rm -rf "$sysroot"; [ $check -eq 1 ] && rm -rf "$out"' EXIT
mkdir -p "$sysroot/include" "$sysroot/lib"
ln -s /usr/include/wasm32-wasi "$sysroot/include/wasm32-wasip1"
ln -s /usr/lib/wasm32-wasi "$sysroot/lib/wasm32-wasip1"

asm_inc="/usr/include/$(uname -m)-linux-gnu"
bpf() { # bpf NAME: NAME.bpf.c -> NAME.bpf.o
	clang-19 -target bpf -mcpu=v3 -O2 -g -fdebug-compilation-dir=. -D__TARGET_ARCH_x86 -Wall -Werror \
		-I include -I "$asm_inc" -c "$1.bpf.c" -o "$out/$1.bpf.o.tmp"
	llvm-strip-19 -g "$out/$1.bpf.o.tmp" -o "$out/$1.bpf.o"
	rm -f "$out/$1.bpf.o.tmp"
}
app() { # app NAME [cflags...]: NAME.c -> NAME.wasm, embedding from $out
	local name=$1 src=$1.c
	shift
	if [ "${1:-}" = "--src" ]; then src=$2; shift 2; fi
	clang-19 --target=wasm32-wasip1 --sysroot="$sysroot" -std=gnu23 -O2 -Wall -Wextra -Werror \
		-Wno-unused-parameter -Wno-c23-extensions -fdebug-compilation-dir=. \
		-I include -I "$out" -I . --embed-dir="$out" --embed-dir=. --embed-dir=../../gadgets/testdata \
		-nodefaultlibs -Wl,--strip-all -o "$out/$name.wasm" "$src" "$@" -lc "$builtins"
}

for obj in execsnoop sigsnoop mapcount kprobe ringbench; do
	bpf "$obj"
done

app execsnoop
app sigsnoop
app mapcount
app kprobe
app ringbench
app trap_callback
app no_poll
app verifier
app bad_pointers
app memhog
app gowrapper
app sandbox

if [ $check -eq 1 ]; then
	stale=0
	for f in "$out"/*.o "$out"/*.wasm; do
		b=$(basename "$f")
		if ! cmp -s "$f" "$b"; then
			echo "build.sh: wasmbpf/testdata/$b is stale: regenerate it with make wasm-bpf-apps" >&2
			stale=1
		fi
	done
	[ $stale -eq 0 ] && echo "build.sh: wasm-bpf test applications up to date"
	exit $stale
fi
