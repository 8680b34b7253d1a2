#!/usr/bin/env bash
# Set up and run ccbridge on the embedded default: SQLite, an embedded Redis (Valkey) started
# here, and the ConnectyCube sandbox instead of a cloud account. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-8000}
REDIS_PORT=${REDIS_PORT:-16379}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}

scripts/setup.sh
mkdir -p var/log

# A development .env with real random keys, made once and never committed.
if [ ! -f .env ]; then
    {
        echo "# Made by scripts/run.sh for local development. Not for production."
        echo "SECRET_KEY=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        echo "FIELD_ENCRYPTION_KEYS=$(.venv/bin/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
    } > .env
fi

pids=()
cleanup() {
    trap - EXIT INT TERM
    echo; echo "stopping..."
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [[ "$REDIS_URL" == "redis://127.0.0.1:$REDIS_PORT/0" ]]; then
    .venv/bin/python scripts/embedded_redis.py --port "$REDIS_PORT" > var/log/redis.log 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do
        grep -q "embedded Redis" var/log/redis.log 2>/dev/null && break
        sleep 0.1
    done
    grep -q "embedded Redis" var/log/redis.log || { cat var/log/redis.log; echo "embedded Redis did not start"; exit 1; }
fi

.venv/bin/python manage.py migrate --noinput -v 0
.venv/bin/python manage.py seed_demo --base-url "http://127.0.0.1:$PORT"

.venv/bin/daphne -b 127.0.0.1 -p "$PORT" bridgeproject.asgi:application > var/log/web.log 2>&1 &
pids+=($!)
.venv/bin/celery -A bridgeproject worker -Q default,media -c 2 --loglevel INFO > var/log/worker.log 2>&1 &
pids+=($!)
# The SIP edge: point an Asterisk trunk at udp:127.0.0.1:${EDGE_SIP_PORT:-5070} to send it calls.
.venv/bin/python manage.py runedge > var/log/edge.log 2>&1 &
pids+=($!)

for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/admin/login/" 2>/dev/null && break
    sleep 0.2
done
curl -fsS -o /dev/null "http://127.0.0.1:$PORT/admin/login/" || { tail -30 var/log/web.log; echo "web role did not start"; exit 1; }

cat <<MSG

ccbridge is running (embedded default: SQLite, embedded Redis, ConnectyCube sandbox).
  Admin:       http://127.0.0.1:$PORT/admin/
  Login:       admin / ccbridge-demo   (operator of Vendas: operador / ccbridge-demo)
  Agent app:   http://127.0.0.1:$PORT/agent/   (ana / ana-demo, bruno / bruno-demo)
  Call board:  http://127.0.0.1:$PORT/calls/board/
  SIP edge:    udp:127.0.0.1:${EDGE_SIP_PORT:-5070} (the ccbridge trunk; add a PBX in the admin for AMI)
  Logs:        var/log/{web,worker,edge,redis}.log
Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}"
echo "a process exited; see var/log/"
