#!/usr/bin/env bash
# WhatsApp Web sessions at scale (scripts/bench/sessions.py): connect -> QR latency, host
# memory per connected session at SESSIONS (1,000) sessions, and failover time after a
# SIGKILL, on its own emulator, sandbox, local stack and session hosts (release builds;
# debug with BENCH_SMOKE=1, 20 sessions). Leases are the production defaults (30 s lease,
# 10 s heartbeat, 20 resumptions a second).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
scripts/venv.sh
py=.venv/bin/python
if [ -n "${BENCH_SMOKE:-}" ]; then
  profile=debug; cargo_profile=(); sessions=${SESSIONS:-20}
  # Short leases: the smoke run only shows that the benchmark still runs.
  export SESSION_LEASE_MS=4000 SESSION_HEARTBEAT_MS=1000
else
  profile=release; cargo_profile=(--release); sessions=${SESSIONS:-1000}
fi
cargo build --quiet "${cargo_profile[@]}" -p local -p sandbox -p session-host
port() { "$py" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
moto_port=$(port); api_port=$(port); sandbox_port=$(port); health1=$(port); health2=$(port)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
wait_http() {
  for _ in $(seq 1 300); do
    "$py" -c "import urllib.request;urllib.request.urlopen('$1',timeout=1)" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "$1 did not answer" >&2; return 1
}

export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export STACK_PREFIX=bench-sessions RUST_LOG=warn
export SANDBOX_URL="http://127.0.0.1:$sandbox_port" SANDBOX_PORT="$sandbox_port" GRAPH_API_BASE="http://127.0.0.1:$sandbox_port"
export SWITCHBOARD_URL="http://127.0.0.1:$api_port" PORT="$api_port"
export OPERATOR_EMAIL=operator@bench.example OPERATOR_PASSWORD="correct horse battery staple"
export JWT_SIGNING_KEYS="bench:$("$py" -c 'import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode())')"
# Room for every session in the B2B pool (5 users a connection).
export SESSION_MAX_CONNECTIONS_ENTERPRISE_B2B=$(( (sessions + 4) / 5 + 1 ))
export SESSION_DRIVER=simulator

.venv/bin/python scripts/emulator.py -H 127.0.0.1 -p "$moto_port" > /dev/null 2>&1 &
pids+=($!)
wait_http "$AWS_ENDPOINT_URL/moto-api/"
"target/$profile/whatsapp-sandbox" > /dev/null 2>&1 &
pids+=($!)
wait_http "$SANDBOX_URL/health"
LOCAL_PROCESSORS=off "target/$profile/switchboard-local" > /dev/null 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$api_port/api/health/live"
HEALTH_PORT="$health1" HOST_ID=bench-host-1 "target/$profile/session-host" > /dev/null 2>&1 &
host=$!
pids+=($host)
disown "$host"  # sessions.py kills it with SIGKILL; no "Killed" notice from bash
wait_http "http://127.0.0.1:$health1/health"
"$py" scripts/bench/sessions.py "http://127.0.0.1:$api_port" "$SANDBOX_URL" "$OPERATOR_EMAIL" \
  "$OPERATOR_PASSWORD" "$sessions" "$host" "target/$profile/session-host" "$health2"
