#!/usr/bin/env bash
# `make dev`: the whole system on this machine.
#   - the AWS emulator (moto) on 127.0.0.1:$MOTO_PORT, unless AWS_ENDPOINT_URL points
#     elsewhere (LocalStack, say);
#   - the WhatsApp Cloud API sandbox on 127.0.0.1:$SANDBOX_PORT;
#   - the local stack on 127.0.0.1:$PORT: every route, and the queue processors; it
#     creates the tables, queues and key under $STACK_PREFIX if they are missing;
#   - $SESSION_HOSTS session hosts (default 1) with the simulator driver, holding WhatsApp
#     Web sessions against the sandbox; health on 127.0.0.1:$HEALTH_PORT and up.
# Ctrl-C (or SIGTERM) stops all of them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

export PORT="${PORT:-3000}"
export SANDBOX_PORT="${SANDBOX_PORT:-3001}"
MOTO_PORT="${MOTO_PORT:-5000}"
export STACK_PREFIX="${STACK_PREFIX:-switchboard-local}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export RUST_LOG="${RUST_LOG:-info,aws_config=warn,aws_smithy_runtime=warn}"
# The local WhatsApp sandbox stands in for Meta: tenants with `provider: sandbox` use these
# credentials, and the Graph API base points at it, so nothing local ever calls Meta.
export SANDBOX_APP_SECRET="${SANDBOX_APP_SECRET:-local-sandbox-app-secret}"
export SANDBOX_VERIFY_TOKEN="${SANDBOX_VERIFY_TOKEN:-local-sandbox-verify-token}"
export SANDBOX_URL="${SANDBOX_URL:-http://127.0.0.1:$SANDBOX_PORT}"
export GRAPH_API_BASE="${GRAPH_API_BASE:-$SANDBOX_URL}"
export SWITCHBOARD_URL="http://127.0.0.1:$PORT"
# Partner webhooks may go to local receivers (the sandbox's /_sandbox/receiver/{name});
# in AWS only public addresses are allowed unless the operator says otherwise.
export WEBHOOK_ALLOWED_CIDRS="${WEBHOOK_ALLOWED_CIDRS:-127.0.0.0/8,::1/128}"
export OPERATOR_EMAIL="${OPERATOR_EMAIL:-operator@switchboard.local}"
export OPERATOR_PASSWORD="${OPERATOR_PASSWORD:-switchboard-operator}"
# Each component's log; DEV_LOGS puts them elsewhere (a second stack beside `make dev`).
logs="${DEV_LOGS:-$root/.dev/logs}"
mkdir -p "$root/.dev" "$logs"

# A JWT key ring for this checkout, kept across runs so that tokens survive a restart.
if [ -z "${JWT_SIGNING_KEYS:-}" ]; then
  keys_file="$root/.dev/jwt-signing-keys"
  if [ ! -s "$keys_file" ]; then
    python3 -c 'import base64, secrets; print("dev:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode())' > "$keys_file"
    chmod 600 "$keys_file"
  fi
  JWT_SIGNING_KEYS="$(cat "$keys_file")"
  export JWT_SIGNING_KEYS
fi

port_free() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
# As the servers bind: a port whose last connections linger in TIME_WAIT is free.
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

wait_http() { # url, name, pid
  python3 - "$1" "$2" "$3" <<'PY'
import os, sys, time, urllib.request
url, name, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
deadline = time.time() + 120
while time.time() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(f"{name} exited during start-up; see .dev/logs/")
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)  # it answers, whatever it says
    except Exception:
        time.sleep(0.2)
sys.exit(f"{name} did not answer {url} within 120 s; see .dev/logs/")
PY
}

pids=()
stop() {
  trap - EXIT INT TERM
  if [ ${#pids[@]} -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap stop EXIT
trap 'echo; echo "stopping"; exit 130' INT
trap 'exit 143' TERM

for p in "$PORT" "$SANDBOX_PORT"; do
  port_free "$p" || { echo "port $p is in use (another make dev?); set PORT / SANDBOX_PORT" >&2; exit 1; }
done

scripts/venv.sh
echo "==> building the local stack and the sandbox" >&2
cargo build --quiet -p local -p sandbox -p session-host

if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  port_free "$MOTO_PORT" || { echo "port $MOTO_PORT is in use; set MOTO_PORT" >&2; exit 1; }
  .venv/bin/python scripts/emulator.py -H 127.0.0.1 -p "$MOTO_PORT" > "$logs/moto.log" 2>&1 &
  pids+=($!)
  export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
  wait_http "$AWS_ENDPOINT_URL/moto-api/" "moto_server" "${pids[-1]}"
fi

target/debug/whatsapp-sandbox > "$logs/sandbox.log" 2>&1 &
pids+=($!)
servers=($!)
wait_http "http://127.0.0.1:$SANDBOX_PORT/health" "whatsapp-sandbox" "${pids[-1]}"

target/debug/switchboard-local > "$logs/local.log" 2>&1 &
pids+=($!)
servers+=($!)
wait_http "http://127.0.0.1:$PORT/api/health/live" "switchboard-local" "${pids[-1]}"

# The session hosts: WhatsApp Web sessions, their WhatsApp servers the sandbox's.
SESSION_HOSTS="${SESSION_HOSTS:-1}"
HEALTH_PORT="${HEALTH_PORT:-3100}"
for n in $(seq 1 "$SESSION_HOSTS"); do
  port=$((HEALTH_PORT + n - 1))
  port_free "$port" || { echo "port $port is in use; set HEALTH_PORT" >&2; exit 1; }
  SESSION_DRIVER=simulator HEALTH_PORT="$port" HOST_ID="local-host-$n" \
    target/debug/session-host > "$logs/session-host-$n.log" 2>&1 &
  # NOTE: not among the servers watched below: a session host that stops (or is killed to
  # see a failover) leaves its sessions to the others, as in ECS.
  pids+=($!)
  echo $! > "$logs/../session-host-$n.pid"
  wait_http "http://127.0.0.1:$port/health" "session-host-$n" "${pids[-1]}"
done

echo "==> operator login: POST /api/auth/login {\"email\":\"$OPERATOR_EMAIL\",\"password\":\"$OPERATOR_PASSWORD\"}" >&2
echo "Switchboard is ready: API http://127.0.0.1:$PORT, WhatsApp sandbox http://127.0.0.1:$SANDBOX_PORT, $SESSION_HOSTS session host(s) (health http://127.0.0.1:$HEALTH_PORT/health), AWS $AWS_ENDPOINT_URL (Ctrl-C stops; logs: tail -f .dev/logs/local.log)"

# The emulator, sandbox or local stack ending ends the whole stack. The emulator is not watched: when it dies
# the API stays up and /api/health says 503, as it would in an AWS outage.
wait -n "${servers[@]}"
echo "a component stopped; shutting the stack down (see .dev/logs/)" >&2
exit 1
