#!/usr/bin/env bash
# Installs what the container tests need (internal/podmantest): Podman,
# runc (crun refuses some cgroup layouts) and busybox-static (the test
# image is imported from a directory holding it, no registry). The tests
# configure Podman themselves, in a temporary directory (their own
# containers.conf with runc, no default ulimits, cgroupfs; their own
# storage and API socket), so nothing on the host is reconfigured.
set -euo pipefail
packages=(podman runc busybox-static)
missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "containers.sh: missing ${missing[*]}; run as root or install them" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
	apt-get update
fi
if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
	apt-get update
	apt-get install -y --no-install-recommends "${missing[@]}"
fi
