#!/usr/bin/env bash
# Prints the path of a promtool binary, fetching it once from Debian's `prometheus` package
# (apt-get download + dpkg-deb -x; no install, no root needed for the extraction) into
# var/tools/. Exit 1 with one line on stderr when it cannot be obtained (no apt, offline).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=var/tools/prometheus
BIN="$DEST/usr/bin/promtool"
if [[ -x "$BIN" ]]; then echo "$PWD/$BIN"; exit 0; fi
if command -v promtool >/dev/null 2>&1; then command -v promtool; exit 0; fi
command -v apt-get >/dev/null || { echo "promtool: apt-get not available" >&2; exit 1; }
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
if ! (cd "$WORK" && apt-get download -q prometheus >/dev/null 2>&1); then
  # The package lists may be missing on a fresh machine.
  apt-get update -q >/dev/null 2>&1 || true
  (cd "$WORK" && apt-get download -q prometheus >/dev/null 2>&1) \
    || { echo "promtool: apt-get download prometheus failed" >&2; exit 1; }
fi
mkdir -p "$DEST"
dpkg-deb -x "$WORK"/prometheus_*.deb "$WORK/x"
install -D -m 0755 "$WORK/x/usr/bin/promtool" "$BIN"
echo "$PWD/$BIN"
