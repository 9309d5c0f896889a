#!/bin/sh
# Capacity of the benchmark's load generator: streamed requests/s against
# `modelship sim` (TTFT 0, ITL 0, 8 output tokens each) on loopback, the
# client's CPU time and allocations per request, and wrk's requests/s on the
# same endpoint with the same body (installed with apt-get when missing and
# possible). The simulator runs as a separate process (the benchmark builds
# and starts it). Not part of `go test`.
#
#   bench/capacity.sh                  # 32 connections, 5 s
#   CONCURRENCY=64 DURATION=10 bench/capacity.sh   # seconds
set -eu
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	apt-get install -y wrk >/dev/null 2>&1 || echo "capacity: could not install wrk; running without it" >&2
fi
MODELSHIP_CAPACITY_CONCURRENCY="${CONCURRENCY:-32}" \
MODELSHIP_CAPACITY_SECONDS="${DURATION:-5}" \
	exec go test ./bench/ -run '^$' -bench '^BenchmarkCapacity$' -benchtime 1x -count 1
