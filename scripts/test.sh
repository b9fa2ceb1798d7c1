#!/usr/bin/env bash
# The test command (`make test` runs this; so does CI through .ci/run).
# PostgreSQL: started if it does not answer and its cluster tools exist. Without PostgreSQL
# the PostgreSQL cases are skipped (and pytest says so) unless TRADE_REVIEW_REQUIRE_PG=1.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || \
  .venv/bin/python -c 'import socket,sys; socket.create_connection(("127.0.0.1",5432),1)' 2>/dev/null; }

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "test.sh: PostgreSQL not answering; starting it"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
  if ! pg_up; then
    if [ "${TRADE_REVIEW_REQUIRE_PG:-0}" = "1" ]; then
      echo "test.sh: PostgreSQL is required but could not be started" >&2
      exit 1
    fi
    echo "test.sh: no PostgreSQL on 127.0.0.1:5432: PostgreSQL cases will be SKIPPED"
  fi
fi

exec .venv/bin/python -m pytest "$@"
