#!/usr/bin/env bash
# Starts (or stops) a real Dagger engine v0.19.10 on this host for the
# end-to-end tests, with everything it needs offline:
#
#   eval "$(.ci/deps/dagger-engine.sh start)"   # prints the exports for clients
#   .ci/deps/dagger-engine.sh stop              # stops it all, host as it was
#   .ci/deps/dagger-engine.sh env               # prints the exports again
#
# start:
#   1. installs the Debian packages the engine runs with (runc, dnsmasq, CNI
#      plugins, iptables, ...), the local registry (docker-registry) and
#      mmdebstrap;
#   2. builds the engine and CLI from the Go module proxy (dagger-build.sh);
#   3. starts a local OCI registry on $MODELSHIP_CI_REGISTRY (127.0.0.1:5000)
#      that the engine uses as its docker.io mirror;
#   4. starts the engine under `unshare --mount` with overlays on /etc and
#      /usr/local and a tmpfs on /run, so its runc/dagger-init/resolv.conf
#      never touch the host's files; its socket is $STATE/engine.sock;
#   5. the first time, builds the offline images with the engine itself
#      (.ci/dagger-build/ciimages): debian:bookworm-slim and
#      golang:<host Go>-bookworm published to the local registry (so
#      From("golang:...") resolves through the mirror), and the Go SDK
#      runtime image as an OCI layout in the engine's builtin content dir;
#      then restarts the engine with DAGGER_GO_SDK_MANIFEST_DIGEST.
#   Idempotent: whatever already answers is left running; cached pieces
#   (binaries, rootfs, images) are reused.
# stop: stops the engine and the registry, removes the engine's bridge and
#   the iptables rules it added, leaves caches and state for the next start.
#
# Everything but the export lines goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

VERSION=v0.19.10
CACHE="${DAGGER_CI_CACHE:-/var/cache/modelship-ci}"
STATE="${DAGGER_CI_STATE:-/var/lib/modelship-ci/dagger}"
REGISTRY="${MODELSHIP_CI_REGISTRY:-127.0.0.1:5000}"
SOCK="$STATE/engine.sock"
BRIDGE=dagger0
log() { echo "dagger-engine.sh: $*" >&2; }
die() { log "$*"; exit 1; }

print_env() {
	local bin="$CACHE/dagger-$VERSION/bin"
	echo "export _EXPERIMENTAL_DAGGER_RUNNER_HOST=unix://$SOCK"
	echo "export _EXPERIMENTAL_DAGGER_CLI_BIN=$bin/dagger"
	echo "export PATH=$bin:\$PATH"
	echo "export DO_NOT_TRACK=1"
	echo "export DAGGER_NO_NAG=1"
	echo "export MODELSHIP_CI_REGISTRY=$REGISTRY"
}

# --- packages ---------------------------------------------------------------
install_packages() {
	local want=(runc dnsmasq-base containernetworking-plugins iptables pigz xz-utils git tini busybox-static docker-registry mmdebstrap curl)
	local missing=()
	for p in "${want[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
		{ apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; }
}

# --- registry ---------------------------------------------------------------
registry_answers() { curl -fsS -o /dev/null "http://$REGISTRY/v2/" 2>/dev/null; }

start_registry() {
	if registry_answers; then
		log "registry already answering on $REGISTRY"
		return 0
	fi
	mkdir -p "$STATE/registry/data"
	cat >"$STATE/registry/config.yml" <<-EOF
		version: 0.1
		log:
		  level: warn
		storage:
		  filesystem:
		    rootdirectory: $STATE/registry/data
		  delete:
		    enabled: true
		http:
		  addr: $REGISTRY
	EOF
	log "starting registry on $REGISTRY (storage $STATE/registry/data)"
	setsid docker-registry serve "$STATE/registry/config.yml" \
		>"$STATE/registry/registry.log" 2>&1 </dev/null &
	echo $! >"$STATE/registry/pid"
	for _ in $(seq 1 100); do registry_answers && return 0; sleep 0.1; done
	tail -n 20 "$STATE/registry/registry.log" >&2 || true
	die "registry did not answer on $REGISTRY"
}

# --- engine -----------------------------------------------------------------
engine_answers() {
	[ -S "$SOCK" ] || return 1
	# `dagger core version` is answered by the engine itself.
	_EXPERIMENTAL_DAGGER_RUNNER_HOST="unix://$SOCK" DO_NOT_TRACK=1 DAGGER_NO_NAG=1 \
		timeout 20 "$BIN/dagger" core version --progress=plain >/dev/null 2>&1
}

engine_pid() {
	local pid
	pid=$(cat "$STATE/engine.pid" 2>/dev/null) || return 1
	kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# Runs the engine in a private mount namespace: overlays keep the host's /etc
# (resolv.conf is bind-mounted over) and /usr/local (runc, dagger-init and the
# builtin SDK content live at dagger's fixed paths there) untouched.
start_engine() {
	local digest="$1"
	rm -f "$SOCK"
	mkdir -p "$STATE/engine" "$STATE/cni" "$CACHE/content"
	rm -rf "$STATE/ns"
	mkdir -p "$STATE/ns/etc/upper" "$STATE/ns/etc/work" "$STATE/ns/local/upper" "$STATE/ns/local/work"
	for p in bridge loopback firewall host-local; do cp -f "/usr/lib/cni/$p" "$STATE/cni/$p"; done
	cp -f "$BIN/dnsname" "$STATE/cni/dnsname"
	cat >"$STATE/engine.toml" <<-EOF
		# Generated by .ci/deps/dagger-engine.sh: docker.io comes from the local registry.
		[registry."docker.io"]
		  mirrors = ["$REGISTRY"]
		[registry."$REGISTRY"]
		  http = true
		  insecure = true
	EOF
	# CNI's host-local IPAM keeps its leases in /var/lib/cni: give it a
	# folder of ours there (an empty mount point on the host, removed on stop).
	rm -rf "$STATE/cni-state"; mkdir -p "$STATE/cni-state"
	if [ ! -d /var/lib/cni ]; then mkdir -p /var/lib/cni && touch "$STATE/cni.created"; fi
	# Snapshots are mounted with overlayfs "volatile"; after the engine's
	# namespace goes away their work dirs keep incompat/volatile and the next
	# mount of them fails with EINVAL until it is removed (no reboot happened
	# in between, so the page cache still holds what was written).
	find "$STATE/engine" -maxdepth 6 -type d -path '*/work/incompat' -prune -exec rm -rf {} + 2>/dev/null || true
	iptables_snapshot
	log "starting engine $VERSION (state $STATE/engine, log $STATE/engine.log${digest:+, go sdk $digest})"
	STATE="$STATE" BIN="$BIN" CACHE="$CACHE" SOCK="$SOCK" DIGEST="$digest" \
		setsid unshare --mount --propagation private bash -c '
		set -e
		ns=$STATE/ns
		mount -t overlay overlay -o "lowerdir=/etc,upperdir=$ns/etc/upper,workdir=$ns/etc/work" /etc
		mount -t overlay overlay -o "lowerdir=/usr/local,upperdir=$ns/local/upper,workdir=$ns/local/work" /usr/local
		mount -t tmpfs tmpfs /run
		mount --bind "$STATE/cni-state" /var/lib/cni
		install -m 0755 "$(command -v runc)" /usr/local/bin/runc
		install -m 0755 "$BIN/dagger-init" /usr/local/bin/dagger-init
		mkdir -p /usr/local/share/dagger/content
		mount --bind "$CACHE/content" /usr/local/share/dagger/content
		export DAGGER_GO_SDK_MANIFEST_DIGEST="$DIGEST"
		exec "$BIN/engine" --addr "unix://$SOCK" --root "$STATE/engine" \
			--config "$STATE/engine.toml" --oci-cni-binary-dir "$STATE/cni" \
			--oci-worker-binary /usr/local/bin/runc
	' >"$STATE/engine.log" 2>&1 </dev/null &
	echo $! >"$STATE/engine.pid"
	for _ in $(seq 1 300); do
		engine_answers && { log "engine answering on unix://$SOCK"; return 0; }
		kill -0 "$(cat "$STATE/engine.pid")" 2>/dev/null || break
		sleep 0.2
	done
	tail -n 40 "$STATE/engine.log" >&2 || true
	die "engine did not answer on unix://$SOCK"
}

stop_engine() {
	local pid
	if pid=$(engine_pid); then
		log "stopping engine (pid $pid)"
		kill -TERM "$pid"
		for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		if kill -0 "$pid" 2>/dev/null; then
			log "engine did not stop in 30s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$STATE/engine.pid" "$SOCK"
	network_cleanup
	if [ -f "$STATE/cni.created" ]; then
		rmdir /var/lib/cni 2>/dev/null || log "/var/lib/cni is not empty; left in place"
		rm -f "$STATE/cni.created"
	fi
}

# The engine's CNI setup adds a bridge and iptables rules in the host's
# network namespace (a mount namespace does not hide those). On stop remove
# exactly the engine's: rules commented name: "dagger" (CNI's per-container
# rules), rules naming its bridge or its subnet, then the CNI-* chains left
# empty and unreferenced that were not there before the first start. Other
# CNI users (a Kubernetes node, say) keep theirs.
iptables_snapshot() {
	[ -f "$STATE/iptables.before" ] || iptables-save >"$STATE/iptables.before" 2>/dev/null || true
}

network_cleanup() {
	local net net_re="" table rule c pass
	net=$(ip -4 route show dev "$BRIDGE" 2>/dev/null | awk '/proto kernel/ {print $1; exit}' || true)
	case "$net" in
	*/16) net_re="(-s|-d) ${net%.*.*/16}"; net_re="${net_re//./\\.}\\.[0-9]+\\.[0-9]+" ;;
	?*) net_re="(-s|-d) ${net//./\\.}" ;;
	esac
	ours() {
		[[ $1 == *'name: \"dagger\"'* || $1 == *"$BRIDGE"* ]] && return 0
		[[ -n $net_re && $1 =~ $net_re ]]
	}
	for table in filter nat mangle raw; do
		iptables -t "$table" -S >/dev/null 2>&1 || continue
		while IFS= read -r rule; do
			ours "$rule" || continue
			eval "iptables -t $table -D ${rule#-A }" 2>/dev/null || true
		done < <(iptables -t "$table" -S 2>/dev/null | grep '^-A ')
		# The firewall plugin's shared chains, when it made them and nobody
		# else has rules in them any more.
		if [ "$table" = filter ] && ! grep -q '^:CNI-FORWARD ' "$STATE/iptables.before" 2>/dev/null &&
			! iptables -S CNI-FORWARD 2>/dev/null | grep '^-A ' | grep -qv -- '-j CNI-ADMIN' &&
			! iptables -S CNI-ADMIN 2>/dev/null | grep -q '^-A '; then
			while iptables -D FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD 2>/dev/null; do :; done
			iptables -F CNI-FORWARD 2>/dev/null || true
		fi
		for pass in 1 2 3; do
			for c in $(iptables -t "$table" -S 2>/dev/null | sed -n 's/^-N \(CNI-[^ ]*\)$/\1/p' || true); do
				grep -q "^:$c " "$STATE/iptables.before" 2>/dev/null && continue
				iptables -t "$table" -S "$c" 2>/dev/null | grep -q '^-A ' && continue
				iptables -t "$table" -S 2>/dev/null | grep -Eq -- "-j $c( |\$)" && continue
				iptables -t "$table" -X "$c" 2>/dev/null || true
			done
		done
	done
	ip link del "$BRIDGE" 2>/dev/null || true
	rm -f "$STATE/iptables.before"
}

# --- offline images ---------------------------------------------------------
rootfs() {
	local name="$1"; shift
	local dir="$CACHE/rootfs/$name"
	if [ ! -f "$dir/.done" ]; then
		log "building $name rootfs with mmdebstrap ($*)"
		rm -rf "$dir"; mkdir -p "$(dirname "$dir")"
		mmdebstrap --quiet --variant=minbase --include="$(IFS=,; echo "$*")" \
			--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
			--dpkgopt='path-exclude=/usr/share/locale/*' \
			bookworm "$dir" >&2
		# Device nodes cannot be copied into a layer; the runtime provides /dev.
		find "$dir/dev" -mindepth 1 -delete
		touch "$dir/.done"
	fi
	echo "$dir"
}

golang_tag() { go env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+).*/\1/'; }

images_ready() {
	[ -s "$CACHE/content/go-sdk.digest" ] &&
		[ -f "$CACHE/content/index.json" ] &&
		curl -fsS -o /dev/null -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
			"http://$REGISTRY/v2/library/golang/manifests/$(golang_tag)-bookworm" 2>/dev/null &&
		curl -fsS -o /dev/null -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
			"http://$REGISTRY/v2/library/debian/manifests/bookworm-slim" 2>/dev/null
}

build_images() {
	local debian golang tool="$STATE/ciimages"
	debian=$(rootfs debian ca-certificates)
	golang=$(rootfs golang ca-certificates git gcc libc6-dev make)
	(cd "$ROOT/.ci/dagger-build" && CGO_ENABLED=0 GOFLAGS=-mod=mod \
		GONOSUMDB="github.com/dagger/dagger,github.com/jedevc/go-libsecret,github.com/vito/bubbline" \
		go build -o "$tool" ./ciimages)
	_EXPERIMENTAL_DAGGER_RUNNER_HOST="unix://$SOCK" _EXPERIMENTAL_DAGGER_CLI_BIN="$BIN/dagger" \
		DO_NOT_TRACK=1 DAGGER_NO_NAG=1 \
		"$tool" -debian-rootfs "$debian" -golang-rootfs "$golang" -goroot "$(go env GOROOT)" \
		-golang-tag "$(golang_tag)-bookworm" -codegen "$BIN/codegen" -registry "$REGISTRY" \
		-content "$CACHE/content" >&2
}

# --- commands ---------------------------------------------------------------
cmd_start() {
	local t0=$SECONDS
	[ "$(id -u)" = 0 ] || die "must run as root (the engine runs on the host)"
	install_packages
	BIN=$("$ROOT/.ci/deps/dagger-build.sh")
	mkdir -p "$STATE"
	start_registry
	if engine_pid >/dev/null && engine_answers && images_ready; then
		log "engine already answering on unix://$SOCK"
		print_env
		return 0
	fi
	stop_engine
	if ! images_ready; then
		start_engine ""
		build_images
		stop_engine
	fi
	start_engine "$(cat "$CACHE/content/go-sdk.digest")"
	log "ready in $((SECONDS - t0))s"
	print_env
}

cmd_stop() {
	BIN="$CACHE/dagger-$VERSION/bin"
	stop_engine
	local pid
	if pid=$(cat "$STATE/registry/pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null; then
		log "stopping registry (pid $pid)"
		kill -TERM "$pid"
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -f "$STATE/registry/pid"
	rm -rf "$STATE/ns"
	log "stopped"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
env) print_env ;;
*) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
