#!/usr/bin/env bash
# Builds the pinned Dagger CLI, engine and helper binaries from the Go module
# proxy (no container registry, no download of release binaries) and prints the
# directory that holds them:
#
#   bin=$(.ci/deps/dagger-build.sh)    # -> $DAGGER_CI_CACHE/dagger-v0.19.10/bin
#
# Binaries: dagger (CLI), engine, dagger-init (cmd/init), dnsname (CNI plugin),
# codegen and introspect (for the Go SDK runtime image and offline codegen).
# The build goes through the helper module .ci/dagger-build (dagger's own
# go.mod has replace directives, so `go install ...@v0.19.10` cannot work).
# Skipped when every binary is already there; cold it takes about 4 minutes on
# 2 cores. Everything but the final line goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/../dagger-build"

VERSION=v0.19.10
CACHE="${DAGGER_CI_CACHE:-/var/cache/modelship-ci}"
BIN="$CACHE/dagger-$VERSION/bin"
log() { echo "dagger-build.sh: $*" >&2; }

# name in $BIN => package
declare -A PKGS=(
	[dagger]=github.com/dagger/dagger/cmd/dagger
	[engine]=github.com/dagger/dagger/cmd/engine
	[dagger-init]=github.com/dagger/dagger/cmd/init
	[dnsname]=github.com/dagger/dagger/cmd/dnsname
	[codegen]=github.com/dagger/dagger/cmd/codegen
	[introspect]=github.com/dagger/dagger/cmd/introspect
)

missing=()
for name in "${!PKGS[@]}"; do
	[ -x "$BIN/$name" ] || missing+=("$name")
done
if [ ${#missing[@]} -eq 0 ]; then
	log "dagger $VERSION binaries already built in $BIN"
	echo "$BIN"
	exit 0
fi

command -v go >/dev/null || { log "go is required (Go 1.25 or later)"; exit 1; }
# A few of dagger's modules have no entry in the checksum database.
export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}github.com/dagger/dagger,github.com/jedevc/go-libsecret,github.com/vito/bubbline"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
ldflags="-s -w -X github.com/dagger/dagger/engine.Version=$VERSION -X github.com/dagger/dagger/engine.Tag=$VERSION"

mkdir -p "$BIN"
tmp=$(mktemp -d "$BIN/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
for name in "${missing[@]}"; do
	log "building $name (${PKGS[$name]}) ..."
	go build -trimpath -ldflags "$ldflags" -o "$tmp/$name" "${PKGS[$name]}"
done
# Move into place only once all built, so a half build is never "cached".
for name in "${missing[@]}"; do mv "$tmp/$name" "$BIN/$name"; done
log "built ${missing[*]} in $(( $(date +%s) - start ))s into $BIN"
echo "$BIN"
