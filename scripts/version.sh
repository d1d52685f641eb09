#!/usr/bin/env bash
# Prints the semantic version of the checkout it runs in: what the Makefile
# links into sluice (main.version, shown by `sluice version`). The scheme is
# Go's own (what `go build` stamps since Go 1.24), so that versions sort as
# the commits do:
#
#   on a tag vX.Y.Z                  vX.Y.Z
#   after vX.Y.Z                     vX.Y.(Z+1)-0.<commit time>-<commit>   above vX.Y.Z, below vX.Y.Z+1
#   after a pre-release vX.Y.Z-pre   vX.Y.Z-pre.0.<commit time>-<commit>
#   before any tag                   v0.0.0-<commit time>-<commit>
#   with uncommitted changes         the above, then +dirty
#   outside a git checkout           v0.0.0-dev
#
# <commit time> is the commit's UTC time as yyyymmddhhmmss, <commit> its
# first 12 hex digits. Tags that are not semantic versions are ignored.
#
# With --date it prints the build date (RFC 3339, UTC) instead:
# $SOURCE_DATE_EPOCH when set, else the commit's time for a clean checkout
# (so that a rebuild of the same commit is byte for byte the same), else now.
set -euo pipefail

in_git() { git rev-parse --verify -q HEAD >/dev/null 2>&1; }
clean() { git diff --quiet HEAD -- 2>/dev/null; }

if [[ ${1:-} == --date ]]; then
	if [[ -n ${SOURCE_DATE_EPOCH:-} ]]; then
		date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ
	elif in_git && clean; then
		TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ
	else
		date -u +%Y-%m-%dT%H:%M:%SZ
	fi
	exit 0
fi

if ! in_git; then
	echo v0.0.0-dev
	exit 0
fi
dirty=""
clean || dirty="+dirty"
semver='^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$'

# A tag on this commit, the highest if several.
for tag in $(git tag --points-at HEAD --sort=-v:refname); do
	if [[ $tag =~ $semver ]]; then
		echo "$tag$dirty"
		exit 0
	fi
done

when=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S)
commit=$(git rev-parse HEAD | cut -c1-12)
base=$(git describe --tags --abbrev=0 --match 'v[0-9]*.[0-9]*.[0-9]*' 2>/dev/null || true)
if [[ $base =~ $semver ]]; then
	major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]} patch=${BASH_REMATCH[3]} pre=${BASH_REMATCH[4]}
	if [[ -n $pre ]]; then
		echo "$base.0.$when-$commit$dirty"
	else
		echo "v$major.$minor.$((patch + 1))-0.$when-$commit$dirty"
	fi
else
	echo "v0.0.0-$when-$commit$dirty"
fi
