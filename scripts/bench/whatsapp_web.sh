#!/usr/bin/env bash
# The WhatsApp Web driver (session-host/whatsapp-web/benches/clients.rs): RSS per idle
# whatsapp-rust client with the DynamoDB store (100 clients on the offline transport), and
# the store's operations per inbound message (Signal decrypt through whatsapp-rust). Release
# build, moto (KMS) and Dynoxide (DynamoDB); BENCH_SMOKE=1: debug build, moto only, 3
# clients and 3 messages.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
scripts/venv.sh
# shellcheck source=scripts/bench/emulators.sh
. scripts/bench/emulators.sh
export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export STACK_PREFIX=bench-wa RUST_LOG=error
if [ -n "${BENCH_SMOKE:-}" ]; then
  cargo bench --quiet --profile dev -p whatsapp-web-driver --bench clients -- 3 3
else
  cargo bench --quiet -p whatsapp-web-driver --bench clients -- "${CLIENTS:-100}" "${MESSAGES:-20}"
fi
