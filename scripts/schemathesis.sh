#!/usr/bin/env bash
# schemathesis against a local stack of its own (emulator, sandbox, every route, the queue
# processors, a session host), from the document the stack serves. `make test` runs it
# bounded; run it longer with, for example:
#   ST_MAX_EXAMPLES=500 scripts/schemathesis.sh
# Ports: ST_PORT (default 3300) and the next three, and 3310 for the session host.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/venv.sh

port="${ST_PORT:-3300}"
work=$(mktemp -d)
export PORT="$port" SANDBOX_PORT=$((port + 1)) MOTO_PORT=$((port + 2)) HEALTH_PORT=$((port + 10))
export STACK_PREFIX="fuzz-$$" DEV_LOGS="$work/logs"
export OPERATOR_EMAIL="operator@switchboard.local" OPERATOR_PASSWORD="switchboard-operator"
export SANDBOX_VERIFY_TOKEN="fuzz-verify-token"
# Less noise: the stack's logs are kept only when the run fails.
export RUST_LOG="${ST_RUST_LOG:-warn}"
unset AWS_ENDPOINT_URL
base="http://127.0.0.1:$port"

scripts/dev.sh > "$work/dev.log" 2>&1 &
dev=$!
finish() {
  status=$?
  kill "$dev" 2>/dev/null || true
  wait "$dev" 2>/dev/null || true
  if [ "$status" -ne 0 ] || [ -n "${ST_KEEP_LOGS:-}" ]; then
    echo "--- the stack's logs ($work) ---"
    tail -n 40 "$work/dev.log" "$work"/logs/*.log 2>/dev/null || true
  else
    rm -rf "$work"
  fi
}
trap finish EXIT

for _ in $(seq 1 600); do
  grep -q "Switchboard is ready" "$work/dev.log" 2>/dev/null && break
  kill -0 "$dev" 2>/dev/null || { cat "$work/dev.log"; exit 1; }
  sleep 0.5
done
grep -q "Switchboard is ready" "$work/dev.log" || { echo "the stack did not start"; exit 1; }

eval "$(.venv/bin/python tests/schemathesis/credentials.py "$base" "http://127.0.0.1:$SANDBOX_PORT")"
# The resources the requests address (ids, not credentials), to read a failure by.
env | grep -E '^ST_(TENANT_ID|PLATFORM_ID|OTHER_PLATFORM_ID|B2B_USER|SUBSCRIPTION_ID|DELIVERY_ID|CONVERSATION_ID|MESSAGE_ID)=' | sort

.venv/bin/schemathesis --config-file tests/schemathesis/schemathesis.toml run "$base/api/openapi.json" \
  --url "$base" \
  --checks all \
  --exclude-checks positive_data_acceptance \
  --max-examples "${ST_MAX_EXAMPLES:-25}" \
  --seed "${ST_SEED:-20261130}" \
  --request-timeout 20 \
  --max-response-time 15 \
  --workers 2 \
  --no-color
