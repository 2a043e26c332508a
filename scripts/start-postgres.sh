#!/usr/bin/env bash
# Installs PostgreSQL from Debian's packages if it is missing, starts a throwaway cluster on
# 127.0.0.1:${PGPORT:-54329} owned by the postgres user, and prints its URL on the last line.
# Used by .ci/run for the oracle's PostgreSQL tests; safe to run again.
set -euo pipefail
port="${PGPORT:-54329}"
dir="${PGDATA_DIR:-/tmp/backhaul-pg}"

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing PostgreSQL from Debian's packages..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

if ! su postgres -c "$bin/pg_ctl -D $dir status" >/dev/null 2>&1; then
    rm -rf "$dir"
    mkdir -p "$dir"
    chown postgres "$dir"
    su postgres -c "$bin/initdb -D $dir -A trust -U postgres" >/dev/null
    su postgres -c "$bin/pg_ctl -D $dir -l $dir/log -o '-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=on' -w start" >&2
fi
echo "postgres://postgres@127.0.0.1:$port/postgres"
