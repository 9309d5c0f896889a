#!/usr/bin/env bash
# Builds the pinned Kubernetes v1.34.1 components, CoreDNS v1.12.3 and a tiny
# static pause binary from the Go module proxy (no release downloads, no
# registry) and prints the directory that holds them:
#
#   bin=$(.ci/deps/k8s-build.sh)    # -> $K8S_CI_CACHE/k8s-v1.34.1/bin
#
# Binaries: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
# kubectl, kube-proxy, coredns, pause. All static (CGO_ENABLED=0).
# Kubernetes is built through the helper module .ci/k8s-build (kubernetes'
# own go.mod replaces its staging modules with ./staging). v1.34 is pinned on
# purpose: from v1.35 the kubelet refuses cgroup v1 by default.
# Skipped when every binary is already there; cold it takes 6-10 minutes on
# 2 cores (about 4.5 GB of build cache). Everything but the final line goes
# to stderr.
set -euo pipefail
cd "$(dirname "$0")/../k8s-build"

VERSION=v1.34.1
COREDNS_VERSION=v1.12.3
CACHE="${K8S_CI_CACHE:-${DAGGER_CI_CACHE:-/var/cache/modelship-ci}}"
BIN="$CACHE/k8s-$VERSION/bin"
log() { echo "k8s-build.sh: $*" >&2; }

# name in $BIN => package (built in the helper module)
declare -A PKGS=(
	[kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
	[kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
	[kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
	[kubelet]=k8s.io/kubernetes/cmd/kubelet
	[kubectl]=k8s.io/kubernetes/cmd/kubectl
	[kube-proxy]=k8s.io/kubernetes/cmd/kube-proxy
	[pause]=./pause
)
# pause first (seconds), then the commands.
ORDER=(pause kubectl kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

missing=()
for name in "${ORDER[@]}" coredns; do
	[ -x "$BIN/$name" ] || missing+=("$name")
done
if [ ${#missing[@]} -eq 0 ]; then
	log "kubernetes $VERSION binaries already built in $BIN"
	echo "$BIN"
	exit 0
fi

command -v go >/dev/null || { log "go is required (Go 1.25 or later)"; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-mod=mod
minor=${VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"

mkdir -p "$BIN"
tmp=$(mktemp -d "$BIN/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
for name in "${missing[@]}"; do
	t0=$(date +%s)
	if [ "$name" = coredns ]; then
		log "building coredns $COREDNS_VERSION ..."
		# CoreDNS's go.mod has no replace directives: go install works as is.
		GOBIN="$tmp" GOFLAGS= go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
	else
		log "building $name (${PKGS[$name]}) ..."
		go build -trimpath -ldflags "$ldflags" -o "$tmp/$name" "${PKGS[$name]}"
	fi
	log "  $name: $(( $(date +%s) - t0 ))s"
done
# Move into place only once all built, so a half build is never "cached".
for name in "${missing[@]}"; do mv "$tmp/$name" "$BIN/$name"; done
log "built ${missing[*]} in $(( $(date +%s) - start ))s into $BIN"
echo "$BIN"
