#!/usr/bin/env bash
# Builds a Rust stage or gadget module against sluice's Rust SDK with plain
# rustc (no cargo, no crate from outside):
#
#   bash sdk/rust/build.sh path/to/main.rs out.wasm
#
# The SDK (sdk/rust/sluice) is compiled as an rlib into a temporary
# directory, then main.rs as a cdylib for wasm32-wasi that links it. The
# toolchain is Debian's: rustc 1.63 (/usr/bin/rustc, not a rustup one that
# may be first on PATH), libstd-rust-dev-wasm32 and lld-14 (Debian's
# rust-lld), installed with apt when missing. The output is reproducible:
# paths are remapped and symbols stripped.
set -euo pipefail

src=$1
out=$2
sdk=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$sdk/../.." && pwd)
RUSTC=${RUSTC:-/usr/bin/rustc}

need=()
[ -x "$RUSTC" ] || need+=(rustc)
[ -d /usr/lib/rustlib/wasm32-wasi/lib ] || need+=(libstd-rust-dev-wasm32)
command -v lld-14 >/dev/null || need+=(lld-14)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "sdk/rust/build.sh: missing ${need[*]}; run as root or install them" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || apt-get update >&2
	apt-get install -y --no-install-recommends "${need[@]}" >&2 ||
		{ apt-get update >&2 && apt-get install -y --no-install-recommends "${need[@]}" >&2; }
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=(--edition 2021 --target wasm32-wasi -O -C debuginfo=0 -C strip=symbols
	--remap-path-prefix "$root=sluice" --remap-path-prefix "$tmp=build")
"$RUSTC" "${flags[@]}" --crate-type rlib --crate-name sluice "$sdk/sluice/lib.rs" -o "$tmp/libsluice.rlib"
name=$(basename "$(dirname "$src")" | tr -c 'a-zA-Z0-9_\n' _)
"$RUSTC" "${flags[@]}" --crate-type cdylib --crate-name "$name" --extern sluice="$tmp/libsluice.rlib" "$src" -o "$tmp/out.wasm"
chmod 644 "$tmp/out.wasm"
mv "$tmp/out.wasm" "$out"
