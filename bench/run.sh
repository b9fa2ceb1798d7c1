#!/usr/bin/env bash
# `make bench`: every benchmark scenario; writes bench/results/<scenario>.json and bench/RESULTS.md.
# Needs wrk (Debian package): installed here with apt-get when missing (we run as root).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
  echo "bench: wrk not found; installing the Debian package (apt-get install -y wrk)"
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "bench: cannot install wrk: needs root and apt-get; install it (package 'wrk') and rerun" >&2
    exit 2
  fi
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } >/dev/null; then
    echo "bench: 'apt-get install -y wrk' failed; install wrk by hand and rerun" >&2
    exit 2
  fi
  command -v wrk >/dev/null 2>&1 || { echo "bench: wrk still not on PATH after install" >&2; exit 2; }
fi

# The deadline storm also runs beside `stress-ng --cpu 1` (one core busy, as on a shared node);
# without it that variant is skipped and the results say so.
if ! command -v stress-ng >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "bench: stress-ng not found; installing the Debian package (apt-get install -y stress-ng)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng >/dev/null || true
fi

exec "${VENV:-.venv}/bin/python" -m bench.run "$@"
