#!/usr/bin/env bash
# Starts a Docker engine of its own for the end-to-end deploy tests and prints
# the line that points clients at it:
#
#   eval "$(.ci/deps/docker.sh [STATE_DIR])"   # exports DOCKER_HOST
#
# Installs Debian's docker.io (dockerd 20.10, API 1.41) when dockerd is
# missing. The engine keeps its images, containers and state under STATE_DIR
# (default /var/lib/modelship-ci), listens on
# unix:///run/modelship-ci/docker.sock, and leaves any other engine on the
# machine alone. Idempotent: when that socket already answers, nothing is
# started. Everything but the export line goes to stderr.
set -euo pipefail

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

if answers; then
	log "engine already answering on $host"
	echo "export DOCKER_HOST=$host"
	exit 0
fi

mkdir -p "$state/data" "$state/exec" "$rundir"
pidfile="$rundir/dockerd.pid"
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
