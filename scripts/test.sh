#!/usr/bin/env bash
# Install everything the tests need (Debian packages when run as root, Python and npm packages),
# make sure PostgreSQL and Redis run, lint, and run the whole suite.
#
# Tiers: the Django tests run on SQLite, then the whole suite (protocol, Django, the real
# Asterisk lab, Chromium) runs on PostgreSQL. With CI=true nothing may be skipped: a missing
# prerequisite fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

CI=${CI:-false}
PG_URL=${TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/ccbridge}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
say() { printf '\n== %s\n' "$*"; }
as_root() { [ "$(id -u)" = 0 ]; }

say "system packages"
packages=$(grep -v '^\s*#' scripts/apt-packages.txt | xargs)
missing=()
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if as_root; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    else
        echo "not root: can't install ${missing[*]}; the tests that need them will say so"
    fi
fi

say "Python and npm dependencies"
scripts/setup.sh

say "Redis at $REDIS_URL"
if ! .venv/bin/python - 2>/dev/null <<PY
import redis, sys; redis.Redis.from_url("$REDIS_URL").ping()
PY
then
    if ! command -v redis-server >/dev/null && as_root; then
        apt-get install -y -q --no-install-recommends redis-server
    fi
    if command -v redis-server >/dev/null; then
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
            --dir /tmp --logfile /tmp/ccbridge-redis.log
        sleep 0.5
    fi
fi

say "PostgreSQL at 127.0.0.1:5432"
pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! pg_ready && as_root; then
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        apt-get install -y -q --no-install-recommends postgresql
    fi
    cluster=$(ls /etc/postgresql | sort -V | tail -1)
    pg_ctlcluster --skip-systemctl-redirect "$cluster" main start || true
    for _ in $(seq 30); do pg_ready && break; sleep 0.5; done
    # A cluster we installed uses password auth on TCP: give postgres the password in PG_URL.
    su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" || true
fi

say "lint (ruff)"
.venv/bin/ruff check .

say "tests on SQLite (Django and protocol units)"
env -u DATABASE_URL .venv/bin/python -m pytest -q -m "not asterisk and not browser and not integration" \
    -p no:cacheprovider

if pg_ready; then
    say "whole suite on PostgreSQL"
    DATABASE_URL="$PG_URL" .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
elif [ "$CI" = true ]; then
    echo "CI=true but PostgreSQL is not reachable on 127.0.0.1:5432 and could not be started" >&2
    exit 1
else
    say "PostgreSQL unavailable: running the whole suite on SQLite instead (CI would fail here)"
    env -u DATABASE_URL .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
fi
