#!/usr/bin/env bash
# Starts a Docker engine of its own for the end-to-end deploy tests and prints
# the line that points clients at it:
#
#   eval "$(.ci/deps/docker.sh [STATE_DIR])"   # exports DOCKER_HOST
#   .ci/deps/docker.sh restart [STATE_DIR]      # restarts that daemon
#
# Installs Debian's docker.io (dockerd 20.10, API 1.41) when dockerd is
# missing. The engine keeps its images, containers and state under STATE_DIR
# (default /var/lib/modelship-ci), listens on
# unix:///run/modelship-ci/docker.sock, and leaves any other engine on the
# machine alone. Idempotent: when that socket already answers, nothing is
# started. Everything but the export line goes to stderr.
#
# The daemon runs as a serving host's should for a restart to lose nothing
# (the fault campaign restarts it under load): with live-restore
# (containers keep running while the daemon restarts) and without the
# userland proxy (published ports are kernel NAT rules, not docker-proxy
# processes that stop with the daemon). An engine of ours found running
# with other flags is restarted with these.
set -euo pipefail

restart=
if [ "${1:-}" = restart ]; then
	restart=1
	shift
fi
state="${1:-/var/lib/modelship-ci}"
rundir=/run/modelship-ci
sock="$rundir/docker.sock"
host="unix://$sock"
log() { echo "docker.sh: $*" >&2; }

if ! command -v dockerd >/dev/null 2>&1; then
	log "installing docker.io (dockerd) from Debian"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends docker.io iptables >&2
fi
docker_cli=$(command -v docker || true)
answers() {
	if [ -n "$docker_cli" ]; then
		"$docker_cli" -H "$host" version --format '{{.Server.Version}}' >/dev/null 2>&1
	else
		curl -fsS --unix-socket "$sock" http://docker/_ping >/dev/null 2>&1
	fi
}

pidfile="$rundir/dockerd.pid"
flags=(--live-restore --userland-proxy=false)
current_flags() {
	local args
	args=$(tr '\0' ' ' <"/proc/$(cat "$pidfile")/cmdline" 2>/dev/null) || return 1
	for f in "${flags[@]}"; do [[ " $args " == *" $f "* ]] || return 1; done
}
if answers && [ -z "$restart" ] && [ -f "$pidfile" ] && ! current_flags; then
	log "engine on $host runs without ${flags[*]}: restarting it with them"
	restart=1
fi
if [ -n "$restart" ] && [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
	pid=$(cat "$pidfile")
	kill "$pid"
	for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		log "dockerd $pid did not stop within 30s"
		exit 1
	fi
	log "dockerd $pid stopped"
fi

if answers; then
	log "engine already answering on $host"
	echo "export DOCKER_HOST=$host"
	exit 0
fi

mkdir -p "$state/data" "$state/exec" "$rundir"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
	log "dockerd $(cat "$pidfile") is running but not answering yet; waiting"
else
	rm -f "$pidfile" "$sock"
	log "starting dockerd (state in $state, log $state/dockerd.log)"
	# setsid: the engine outlives this script and the CI step's process group.
	setsid dockerd \
		--data-root "$state/data" \
		--exec-root "$state/exec" \
		--pidfile "$pidfile" \
		"${flags[@]}" \
		--host "$host" \
		>"$state/dockerd.log" 2>&1 </dev/null &
fi

for i in $(seq 1 120); do
	if answers; then
		log "engine answering on $host after ${i} tries"
		echo "export DOCKER_HOST=$host"
		exit 0
	fi
	sleep 0.5
done
log "dockerd did not answer on $host within 60s; last log lines:"
tail -n 30 "$state/dockerd.log" >&2 || true
exit 1
