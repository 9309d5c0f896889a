#!/usr/bin/env bash
# Installs the Prometheus Pushgateway from Debian (prometheus-pushgateway,
# /usr/bin/prometheus-pushgateway) for the tests of notify's Pushgateway sink;
# internal/testenv.Pushgateway starts one per test on a free loopback port.
# Idempotent: does nothing when the binary is already there. Debian's package
# also enables a system service; it is stopped so that nothing listens on
# :9091 behind the tests' back (tests never use that port).
set -euo pipefail

bin=$(command -v prometheus-pushgateway 2>/dev/null || echo /usr/bin/prometheus-pushgateway)
if [ -x "$bin" ]; then
	echo "pushgateway.sh: $("$bin" --version 2>&1 | head -1) at $bin"
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus-pushgateway
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus-pushgateway 2>/dev/null; then
	systemctl stop prometheus-pushgateway || true
fi
echo "pushgateway.sh: installed $(/usr/bin/prometheus-pushgateway --version 2>&1 | head -1)"
