#!/usr/bin/env bash
# Installs an S3-compatible server (moto's, pinned in scripts/requirements-s3.txt) into a virtual
# environment if it is missing, starts it on 127.0.0.1:${S3PORT:-54330}, and prints its endpoint
# on the last line. Used by .ci/run for the oracle's object-store tests; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
port="${S3PORT:-54330}"
venv="${S3_VENV:-/tmp/backhaul-s3-venv}"
endpoint="http://127.0.0.1:$port"

if [[ ! -x "$venv/bin/moto_server" ]]; then
    echo "installing the S3 test server (moto) from PyPI..." >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-s3.txt >&2
fi
if ! curl -fsS "$endpoint/" >/dev/null 2>&1; then
    nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >/tmp/backhaul-s3.log 2>&1 &
    for _ in $(seq 1 100); do
        curl -fsS "$endpoint/" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -fsS "$endpoint/" >/dev/null || { echo "the S3 test server did not start: see /tmp/backhaul-s3.log" >&2; exit 1; }
fi
echo "$endpoint"
