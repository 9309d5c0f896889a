#!/usr/bin/env bash
# Installs @dwmkerr/mock-llm, an OpenAI-compatible mock server that is not
# ours, for the end-to-end tests of internal/testenv.MockLLM. Idempotent: does
# nothing when the pinned version is already installed.
#
# Usage: .ci/deps/mock-llm.sh [DIR]   (default: $MODELSHIP_MOCK_LLM_DIR, else .cache/mock-llm)
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION=0.1.29
DIR="${1:-${MODELSHIP_MOCK_LLM_DIR:-.cache/mock-llm}}"
PKG="$DIR/node_modules/@dwmkerr/mock-llm/package.json"

command -v node >/dev/null || { echo "mock-llm.sh: node is required (Node 20 or later)" >&2; exit 1; }
command -v npm >/dev/null || { echo "mock-llm.sh: npm is required" >&2; exit 1; }

if [ -f "$PKG" ] && grep -q "\"version\": \"$VERSION\"" "$PKG"; then
	echo "mock-llm $VERSION already installed in $DIR"
	exit 0
fi
mkdir -p "$DIR"
npm install --prefix "$DIR" "@dwmkerr/mock-llm@$VERSION" --no-audit --no-fund
echo "mock-llm $VERSION installed in $DIR"
