#!/usr/bin/env bash
# `make bench`: the figures in BENCHMARKS.md. Release builds; takes several minutes.
#   - size of each Lambda package (stripped bootstrap, and zipped as deployed);
#   - init time of the health and auth functions (process start to first event request);
#   - the CPU cost of one password check (argon2id verify);
#   - login latency end to end through the local stack (release) on the moto emulator;
#   - webhook ingest rate against the emulator's own put+send rate, in the same run;
#   - send pacing at 80 and 1,000 msg/s through the message sender against the sandbox
#     (DynamoDB on Dynoxide, installed into .tools/ on first use).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/venv.sh
py=.venv/bin/python

echo "==> building Lambda packages (cargo lambda build --release)" >&2
[ "${BENCH_SKIP_BUILD:-}" = 1 ] || scripts/lambda-build.sh >&2

echo "## Lambda packages (x86_64, stripped)"
for bin in target/lambda/*/bootstrap; do
  "$py" - "$bin" <<'PY'
import io, os, sys, zipfile
path = sys.argv[1]
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.write(path, "bootstrap")
name = os.path.basename(os.path.dirname(path))
print(f"{name}: bootstrap {os.path.getsize(path) / 1e6:.2f} MB, zipped {len(buf.getvalue()) / 1e6:.2f} MB")
PY
done

echo "## Init time (30 cold starts each)"
jwt_keys="bench:$("$py" -c 'import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode())')"
resource_env=(TENANTS_TABLE=t POOL_TABLE=p MESSAGES_TABLE=m INBOUND_EVENTS_QUEUE_URL=q1
  OUTBOUND_HIGH_QUEUE_URL=q2 OUTBOUND_STANDARD_QUEUE_URL=q3 PARTNER_EVENTS_QUEUE_URL=q4
  KMS_KEY_ID=alias/k "JWT_SIGNING_KEYS=$jwt_keys")
for fn in health auth tenants; do
  "$py" scripts/bench/init_time.py "target/lambda/$fn/bootstrap" 30 "${resource_env[@]}"
done

echo "## Password check"
cargo run --quiet --release -p shared --example password_cost

echo "## Login through the local stack (release build, moto emulator)"
cargo build --quiet --release -p local
moto_port=$("$py" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
api_port=$("$py" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
.venv/bin/moto_server -H 127.0.0.1 -p "$moto_port" > /dev/null 2>&1 &
moto=$!
trap 'kill $moto ${api:-} 2>/dev/null || true' EXIT
sleep 2
env AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test \
  AWS_SECRET_ACCESS_KEY=test PORT="$api_port" STACK_PREFIX=bench RUST_LOG=warn LOCAL_PROCESSORS=off \
  JWT_SIGNING_KEYS="$jwt_keys" target/release/switchboard-local > /dev/null 2>&1 &
api=$!
for _ in $(seq 1 100); do
  "$py" -c "import urllib.request;urllib.request.urlopen('http://127.0.0.1:$api_port/api/health/live',timeout=1)" 2>/dev/null && break
  sleep 0.2
done
"$py" scripts/bench/login_latency.py "http://127.0.0.1:$api_port" 50

echo "## Webhook ingest (release local stack, processors off) against the emulator alone"
cargo build --quiet --release -p local --example emulator_rate
fixture=tests/fixtures/meta/inbound/text_message.json
emulator() {
  target/release/examples/emulator_rate "http://127.0.0.1:$moto_port" bench "$fixture" 600 8
}
# NOTE: moto's SendMessage slows as a queue fills (with processors off nothing drains it):
# each emulator run sends to a fresh queue of its own, and runs before and after ingest.
before=$(emulator); echo "before: $before"
ingest=$("$py" scripts/bench/ingest.py "http://127.0.0.1:$api_port" "$fixture" 600 8); echo "$ingest"
after=$(emulator); echo "after: $after"
rate() { sed -n 's|.*: \([0-9.]*\)/s.*|\1|p' <<< "$1" | head -1; }
"$py" -c "i, b, a = $(rate "$ingest"), $(rate "$before"), $(rate "$after"); print(f'ratio ingest / emulator alone: {i / ((b + a) / 2):.2f} (emulator {b:.0f}/s before, {a:.0f}/s after)')"

kill "$moto" "$api" 2>/dev/null || true
scripts/bench/pacing.sh
