#!/usr/bin/env bash
# Regenerates every committed eBPF object under gadgets/ from its source:
#   gadgets/<name>/program.bpf.c     -> gadgets/<name>/program.bpf.o
#   gadgets/testdata/<name>.bpf.c    -> gadgets/testdata/<name>.bpf.o
#   gadgets/helpers/<name>.bpf.c     -> gadgets/helpers/<name>.bpf.o
#   gadgets/testdata/libbpf/<name>.bpf.c -> .../<name>.bpf.o, with DWARF
#     (plain libbpf programs: sluice reads their event types from it), and
#     <name>_stripped.bpf.o without it for the ones tests need both ways
#   gadgets/testdata/libbpf/<name>.types.c -> .../<name>.types.bpf.o: a
#     header compiled alone (DWARF only), as users make an event_type_file
#   bench/gadgets/synth.bpf.c        -> bench/gadgets/synth{64,256}.bpf.o
#
# The output is byte-for-byte reproducible for a given toolchain: sources are
# compiled from gadgets/ with relative paths (BTF line info and DWARF record
# them), the one architecture-specific include directory is mapped to a
# fixed name in DWARF, and DWARF is stripped (llvm-strip -g keeps .BTF and
# .BTF.ext) except where it is the point.
#
#   bash gadgets/build.sh          rebuild in place
#   bash gadgets/build.sh --check  rebuild into a temporary directory and fail
#                                  if any committed object differs
#
# Runs as root on a fresh Debian 12; installs the toolchain when it is missing.
set -euo pipefail

cd "$(dirname "$0")"

packages=(clang-19 llvm-19 lld-19 libbpf-dev bpftool linux-libc-dev)

ensure_toolchain() {
	local missing=()
	for p in "${packages[@]}"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$p")
		fi
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "build.sh: missing ${missing[*]}; run as root or install them" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	# An image with empty package lists cannot install anything; otherwise
	# try the existing lists first and refresh them only on failure.
	if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
		apt-get update
	fi
	if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
		apt-get update
		apt-get install -y --no-install-recommends "${missing[@]}"
	fi
}

ensure_toolchain

CLANG=clang-19
STRIP=llvm-strip-19
# -target bpf still needs <asm/types.h>; any architecture's copy will do.
ASM_INC="/usr/include/$(uname -m)-linux-gnu"
# -fdebug-compilation-dir keeps the checkout's location out of BTF line info.
CFLAGS=(-target bpf -mcpu=v3 -O2 -g -fdebug-compilation-dir=. -fdebug-prefix-map="$ASM_INC"=/usr/include/multiarch
	-D__TARGET_ARCH_x86 -Wall -Werror -I include -I "$ASM_INC")

check=0
if [ "${1:-}" = "--check" ]; then
	check=1
fi
out_root=.
if [ $check -eq 1 ]; then
	out_root=$(mktemp -d)
	trap 'rm -rf "$out_root"' EXIT
fi

# build <src> <committed obj> [extra cflags...]: compiled, DWARF stripped.
build() {
	compile strip "$@"
}

# build_dwarf <src> <committed obj> [extra cflags...]: compiled, DWARF kept.
build_dwarf() {
	compile keep "$@"
}

compile() {
	local mode=$1 src=$2 obj=$3 out="$out_root/$3"
	# (a ../ path is outside gadgets/: in --check mode it goes under the
	# temporary directory all the same)
	[ $check -eq 1 ] && out="$out_root/${3#../}"
	shift 3
	mkdir -p "$(dirname "$out")"
	"$CLANG" "${CFLAGS[@]}" "$@" -c "$src" -o "$out.tmp"
	if [ "$mode" = strip ]; then
		"$STRIP" -g "$out.tmp" -o "$out"
		rm -f "$out.tmp"
	else
		mv "$out.tmp" "$out"
	fi
	if [ $check -eq 1 ] && ! cmp -s "$out" "$obj"; then
		echo "build.sh: $obj is stale: regenerate it with bash gadgets/build.sh" >&2
		stale=1
	fi
}

stale=0
for src in */program.bpf.c; do
	build "$src" "${src%.c}.o"
done
for src in testdata/*.bpf.c helpers/*.bpf.c; do
	case $src in
	testdata/ig_bad_markers.bpf.c)
		# One refused gadget per case (see the source).
		for c in expr percpu zeromap traceloop; do
			build "$src" "testdata/ig_bad_$c.bpf.o" "-DBAD_$(echo "$c" | tr a-z A-Z)"
		done
		;;
	testdata/ig_wasm.bpf.c)
		# Without and with the common filters (see the source).
		build "$src" testdata/ig_wasm.bpf.o
		build "$src" testdata/ig_wasm_filter.bpf.o -DIG_WASM_FILTER
		;;
	*) build "$src" "${src%.c}.o" ;;
	esac
done
for src in testdata/libbpf/*.bpf.c; do
	build_dwarf "$src" "${src%.c}.o"
	case $src in
	testdata/libbpf/syncsnoop.bpf.c | testdata/libbpf/sysregs.bpf.c)
		build "$src" "${src%.bpf.c}_stripped.bpf.o"
		;;
	esac
done
for src in testdata/libbpf/*.types.c; do
	build_dwarf "$src" "${src%.c}.bpf.o" -fno-eliminate-unused-debug-types
done
# The synthetic producer of make bench and make soak, one object per record
# size (see the source).
for size in 64 256; do
	build ../bench/gadgets/synth.bpf.c "../bench/gadgets/synth$size.bpf.o" "-DRECORD_SIZE=$size"
done

if [ $check -eq 1 ]; then
	[ $stale -eq 0 ] && echo "build.sh: all objects up to date"
	exit $stale
fi
