#!/usr/bin/env bash
# Installs Prometheus and promtool from Debian (prometheus, /usr/bin/prometheus
# and /usr/bin/promtool) for the tests of observability/: promtool checks the
# shipped scrape configuration and alert rules and runs their unit tests, and
# the end-to-end test starts its own Prometheus on a free loopback port.
# Prints the binaries' paths as export lines:
#
#   eval "$(bash .ci/deps/prometheus.sh)"   # exports MODELSHIP_PROMETHEUS_BIN, MODELSHIP_PROMTOOL_BIN
#
# Idempotent: installs nothing when both binaries are there. Debian's package
# also enables a system service (and, with recommends, node_exporter); the
# install leaves recommends out and the service is stopped, so that nothing
# listens on :9090 behind the tests' back (tests never use that port).
# Everything but the export lines goes to stderr.
set -euo pipefail

prom=/usr/bin/prometheus
tool=/usr/bin/promtool
if ! [ -x "$prom" ] || ! [ -x "$tool" ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends prometheus >&2
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
		systemctl stop prometheus >&2 || true
	elif [ -x /etc/init.d/prometheus ]; then
		/etc/init.d/prometheus stop >&2 2>&1 || true
	fi
	echo "prometheus.sh: installed $("$prom" --version 2>&1 | head -1)" >&2
else
	echo "prometheus.sh: $("$prom" --version 2>&1 | head -1) at $prom" >&2
fi
echo "export MODELSHIP_PROMETHEUS_BIN=$prom MODELSHIP_PROMTOOL_BIN=$tool"
