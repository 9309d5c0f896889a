#!/usr/bin/env bash
# Builds the Docker Compose v2 CLI (module github.com/docker/compose/v5,
# v5.6.0) from the Go module proxy, installs it as a Docker CLI plugin and
# prints the path of the binary:
#
#   MODELSHIP_COMPOSE_BIN=$(.ci/deps/compose.sh)   # -> $COMPOSE_CI_CACHE/compose-v5.6.0/bin/docker-compose
#
# The binary is both a CLI plugin (`docker compose ...`, linked into
# ~/.docker/cli-plugins/) and a standalone `docker-compose`. It talks to
# whatever DOCKER_HOST names; against our dockerd 20.10 (API 1.41) it
# negotiates the API version down.
# Needs Go 1.26.8 or later (compose's go.mod). Cold (empty module cache) it
# took 2m14s beside other jobs on 2 cores (a 0.6 GB module download);
# skipped when the binary is already there (1 s). Everything but the
# final line goes to stderr.
set -euo pipefail

VERSION=v5.6.0
CACHE="${COMPOSE_CI_CACHE:-${DAGGER_CI_CACHE:-/var/cache/modelship-ci}}"
dir="$CACHE/compose-$VERSION"
BIN="$dir/bin/docker-compose"
log() { echo "compose.sh: $*" >&2; }

# plugin links the binary where the docker CLI looks for plugins.
plugin() {
	local plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
	mkdir -p "$plugins"
	ln -sf "$BIN" "$plugins/docker-compose"
}

if [ -x "$BIN" ]; then
	log "docker compose $VERSION already built: $BIN"
	plugin
	echo "$BIN"
	exit 0
fi

command -v go >/dev/null || { log "go is required"; exit 1; }

start=$(date +%s)
mkdir -p "$dir/bin"
# One build at a time; a build that waited may find the binary made.
exec 9>"$dir/.lock"
flock 9
if [ -x "$BIN" ]; then
	log "docker compose $VERSION built meanwhile: $BIN"
	plugin
	echo "$BIN"
	exit 0
fi
tmp=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# moddir MODULE@VERSION: the module's folder in the module cache (downloaded
# outside any module, so no go.mod is touched).
moddir() { (cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'); }
src=$(moddir "github.com/docker/compose/v5@$VERSION")
[ -f "$src/go.mod" ] || { log "could not download github.com/docker/compose/v5@$VERSION"; exit 1; }

log "building docker compose $VERSION from $src ..."
# Built inside the module, with its own go.mod and go.sum (`go install
# mod@version` refuses a go.mod with exclude directives, which compose's
# has).
(cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath \
	-ldflags "-s -w -X=github.com/docker/compose/v5/internal.Version=$VERSION" \
	-o "$tmp/docker-compose" ./cmd) >&2
# Install atomically ($tmp is in the same folder): a half build is never
# "cached".
mv "$tmp/docker-compose" "$BIN"
log "built docker compose $VERSION in $(( $(date +%s) - start ))s: $BIN"
plugin
echo "$BIN"
