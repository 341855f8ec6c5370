#!/usr/bin/env bash
# The scale-out profile on this machine (docs/scale-out.md): a code server, the webserver, the
# daemon and N Celery workers over one PostgreSQL instance and one Redis. Ctrl-C stops them all.
# Every process gets the same environment: the code location loads the same way everywhere.
set -euo pipefail

BIN="${VENV:-.venv}/bin"
WORKERS="${WORKERS:-2}"
PORT="${PORT:-3000}"
# dagster-celery starts the `celery` command it finds on PATH.
export PATH="$PWD/$BIN:$PATH"

started=()
stop_all() {
  # Each process leads its own session, so a signal to the group also reaches its children
  # (dagster-celery's celery worker, the code server's run processes). The code server ignores
  # SIGTERM: whatever still runs after ten seconds is killed.
  for pid in "${started[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  sleep 10
  for pid in "${started[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
}
trap stop_all EXIT INT TERM

start() {
  setsid "$@" &
  started+=("$!")
}

start dagster code-server start -m export_pipelines.definitions -h 127.0.0.1 -p 4266
start dagster-webserver -w deploy/workspace.yaml -h 127.0.0.1 -p "$PORT"
start dagster-daemon run -w deploy/workspace.yaml
for n in $(seq 1 "$WORKERS"); do
  # One step at a time per worker: a step streams batches and needs its core.
  start dagster-celery worker start -A dagster_celery.app -y deploy/celery.yaml -n "export_worker_$n" -- --concurrency 1
done
echo "scale-out profile: http://127.0.0.1:$PORT ($WORKERS Celery workers); Ctrl-C stops it"
wait -n
