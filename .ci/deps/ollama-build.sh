#!/usr/bin/env bash
# Builds Ollama v0.12.6, CPU only, from the Go module proxy (no release
# download, no cmake) and prints the path of the binary:
#
#   MODELSHIP_OLLAMA_BIN=$(.ci/deps/ollama-build.sh)   # -> $OLLAMA_CI_CACHE/ollama-v0.12.6/bin/ollama
#
# The llama.cpp runner and the ggml CPU backend compile through cgo (gcc,
# g++). The module zip leaves out llama/llama.cpp/vendor/ (Go module zips drop
# vendor/ folders), so the copied source gets its three missing headers back:
# nlohmann json (Debian nlohmann-json3-dev), stb_image.h (Debian libstb-dev)
# and miniaudio.h (from the Go module github.com/gen2brain/malgo v0.11.24).
# Debian packages are installed with apt only when missing.
# Skipped when the binary is already there. Cold (empty Go build and module
# caches) it takes 3 minutes on 2 idle cores, 6-8.5 minutes beside other
# jobs (0.9 GB of memory; 0.4 GB of build cache, 0.4 GB of module cache);
# with a warm build cache a rebuild takes 4 seconds and gives the same
# 31 MB binary. Everything but the final line goes to stderr.
set -euo pipefail

VERSION=v0.12.6
MALGO_VERSION=v0.11.24
CACHE="${OLLAMA_CI_CACHE:-${DAGGER_CI_CACHE:-/var/cache/modelship-ci}}"
BIN="$CACHE/ollama-$VERSION/bin/ollama"
log() { echo "ollama-build.sh: $*" >&2; }

if [ -x "$BIN" ]; then
	log "ollama $VERSION already built: $BIN"
	echo "$BIN"
	exit 0
fi

command -v go >/dev/null || { log "go is required (Go 1.24 or later)"; exit 1; }

# Debian packages: the C/C++ compilers and the two header-only libraries.
need=()
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v g++ >/dev/null || need+=(g++)
[ -f /usr/include/nlohmann/json_fwd.hpp ] || need+=(nlohmann-json3-dev)
[ -f /usr/include/stb/stb_image.h ] || need+=(libstb-dev)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]} ..."
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

start=$(date +%s)
dir="$CACHE/ollama-$VERSION"
mkdir -p "$dir/bin"
# One build at a time; a build that waited may find the binary made.
exec 9>"$dir/.lock"
flock 9
if [ -x "$BIN" ]; then
	log "ollama $VERSION built meanwhile: $BIN"
	echo "$BIN"
	exit 0
fi
# The source is copied to the same folder every time: llama's #cgo flags
# name ${SRCDIR}, so a new folder would make every cgo package miss the Go
# build cache (a rebuild from a fresh temporary folder takes minutes, from
# the same folder seconds).
src_copy="$dir/src"
rm -rf "$src_copy"
tmp=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$tmp" "$src_copy"' EXIT
export GOFLAGS=-mod=mod

# moddir MODULE@VERSION: the module's folder in the module cache (downloaded
# outside any module, so no go.mod is touched).
moddir() { (cd "$tmp" && go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'); }
src=$(moddir "github.com/ollama/ollama@$VERSION")
malgo=$(moddir "github.com/gen2brain/malgo@$MALGO_VERSION")
[ -d "$src" ] && [ -f "$malgo/miniaudio.h" ] || { log "could not download the modules ($src, $malgo)"; exit 1; }

log "copying $src ..."
cp -R "$src" "$src_copy"
chmod -R u+w "$src_copy"
vendor="$src_copy/llama/llama.cpp/vendor"
mkdir -p "$vendor/stb" "$vendor/miniaudio"
cp -R /usr/include/nlohmann "$vendor/"
cp /usr/include/stb/stb_image.h "$vendor/stb/"
cp "$malgo/miniaudio.h" "$vendor/miniaudio/"

log "building ollama $VERSION (CPU, cgo) ..."
(cd "$src_copy" && CGO_ENABLED=1 go build -trimpath \
	-ldflags "-s -w -X=github.com/ollama/ollama/version.Version=${VERSION#v}" \
	-o "$tmp/ollama" .) >&2
# Install atomically ($tmp is in the same folder): a half build is never
# "cached".
mv "$tmp/ollama" "$BIN"
log "built ollama $VERSION in $(( $(date +%s) - start ))s: $BIN"
echo "$BIN"
