#!/usr/bin/env bash
# `make bench`: the figures in BENCHMARKS.md. Release builds; takes several minutes.
#   - size of each Lambda package (stripped bootstrap, and zipped as deployed);
#   - init time of the health and auth functions (process start to first event request);
#   - the CPU cost of one password check (argon2id verify);
#   - login latency end to end through the local stack (release) on the moto emulator;
#   - webhook ingest rate against the emulator's own put+send rate, in the same run;
#   - send pacing at 80 and 1,000 msg/s through the message sender against the sandbox
#     (DynamoDB on Dynoxide, installed into .tools/ on first use);
#   - partner webhook delivery: events per second, latency, and fairness beside an endpoint
#     that times out (scripts/bench/webhooks.sh);
#   - WhatsApp Web sessions: connect -> QR latency, host memory per connected session at
#     1,000 sessions, failover time after a SIGKILL (scripts/bench/sessions.sh);
#   - the WhatsApp Web driver: RSS per idle whatsapp-rust client with the DynamoDB store,
#     store operations per inbound message (scripts/bench/whatsapp_web.sh).
#
# BENCH_SMOKE=1 (what `make test` does) runs every section once with tiny counts on the
# debug build that the tests already made, so that a benchmark that no longer runs fails
# CI. Its figures mean nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/venv.sh
py=.venv/bin/python
smoke=${BENCH_SMOKE:-}

if [ -n "$smoke" ]; then
  profile=debug; cargo_profile=(); runs=2; logins=3; ingest_total=20; bulk_runs=1
  cargo build --quiet -p health -p auth -p tenants -p local --examples --bins
  packages=(target/debug/health target/debug/auth target/debug/tenants)
else
  profile=release; cargo_profile=(--release); runs=30; logins=50; ingest_total=600; bulk_runs=5
  echo "==> building Lambda packages (cargo lambda build --release)" >&2
  [ "${BENCH_SKIP_BUILD:-}" = 1 ] || scripts/lambda-build.sh >&2
  packages=(target/lambda/*/bootstrap)
fi
bootstrap() { if [ -n "$smoke" ]; then echo "target/debug/$1"; else echo "target/lambda/$1/bootstrap"; fi; }

echo "## Lambda packages (x86_64, stripped)"
for bin in "${packages[@]}"; do
  "$py" - "$bin" <<'PY'
import io, os, sys, zipfile
path = sys.argv[1]
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.write(path, "bootstrap")
name = os.path.basename(os.path.dirname(path)) if path.endswith("/bootstrap") else os.path.basename(path)
print(f"{name}: bootstrap {os.path.getsize(path) / 1e6:.2f} MB, zipped {len(buf.getvalue()) / 1e6:.2f} MB")
PY
done

echo "## Init time ($runs cold starts each)"
jwt_keys="bench:$("$py" -c 'import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode())')"
# Every resource variable, from the code's own list (a new queue cannot break this).
resource_lines=$(cargo run --quiet -p adapters --example resource_env)
mapfile -t resource_env <<< "$resource_lines"
resource_env+=("JWT_SIGNING_KEYS=$jwt_keys")
for fn in health auth tenants; do
  "$py" scripts/bench/init_time.py "$(bootstrap "$fn")" "$runs" "${resource_env[@]}"
done

echo "## Password check"
cargo run --quiet "${cargo_profile[@]}" -p domain --example password_cost -- "$((runs + 10))"

echo "## Login through the local stack ($profile build, moto emulator)"
cargo build --quiet "${cargo_profile[@]}" -p local
moto_port=$("$py" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
api_port=$("$py" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
.venv/bin/python scripts/emulator.py -H 127.0.0.1 -p "$moto_port" > /dev/null 2>&1 &
moto=$!
trap 'kill $moto ${api:-} 2>/dev/null || true' EXIT
sleep 2
env AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test \
  AWS_SECRET_ACCESS_KEY=test PORT="$api_port" STACK_PREFIX=bench RUST_LOG=warn LOCAL_PROCESSORS=off \
  JWT_SIGNING_KEYS="$jwt_keys" OPERATOR_EMAIL=operator@bench.example \
  OPERATOR_PASSWORD="correct horse battery staple" \
  "target/$profile/switchboard-local" > /dev/null 2>&1 &
api=$!
for _ in $(seq 1 100); do
  "$py" -c "import urllib.request;urllib.request.urlopen('http://127.0.0.1:$api_port/api/health/live',timeout=1)" 2>/dev/null && break
  sleep 0.2
done
"$py" scripts/bench/login_latency.py "http://127.0.0.1:$api_port" "$logins"

echo "## B2B bulk create through the local stack ($profile build, moto emulator)"
"$py" scripts/bench/b2b_bulk.py "http://127.0.0.1:$api_port" operator@bench.example \
  "correct horse battery staple" "$bulk_runs"

echo "## Webhook ingest ($profile local stack, processors off) against the emulator alone"
cargo build --quiet "${cargo_profile[@]}" -p local --example emulator_rate
fixture=tests/fixtures/meta/inbound/text_message.json
emulator() {
  "target/$profile/examples/emulator_rate" "http://127.0.0.1:$moto_port" bench "$fixture" "$ingest_total" 8
}
# NOTE: moto's SendMessage slows as a queue fills (with processors off nothing drains it):
# each emulator run sends to a fresh queue of its own, and runs before and after ingest.
before=$(emulator); echo "before: $before"
ingest=$("$py" scripts/bench/ingest.py "http://127.0.0.1:$api_port" "$fixture" "$ingest_total" 8); echo "$ingest"
after=$(emulator); echo "after: $after"
rate() { sed -n 's|.*: \([0-9.]*\)/s.*|\1|p' <<< "$1" | head -1; }
"$py" -c "i, b, a = $(rate "$ingest"), $(rate "$before"), $(rate "$after"); print(f'ratio ingest / emulator alone: {i / ((b + a) / 2):.2f} (emulator {b:.0f}/s before, {a:.0f}/s after)')"

kill "$moto" "$api" 2>/dev/null || true
scripts/bench/pacing.sh
scripts/bench/webhooks.sh
scripts/bench/sessions.sh
echo "## WhatsApp Web driver (whatsapp-rust, DynamoDB store)"
scripts/bench/whatsapp_web.sh
