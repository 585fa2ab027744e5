#!/usr/bin/env bash
# Partner webhook delivery through the dispatcher (release build) to the sandbox's
# receivers: events per second, event → delivered latency, and the same beside an endpoint
# that times out on every request. `local/examples/webhook_rate.rs`. Part of `make bench`;
# runs alone too. DynamoDB is Dynoxide (as for pacing: moto answers about 50 DynamoDB
# requests a second and a delivery makes five); SQS and KMS stay on moto.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
scripts/venv.sh
if [ -n "${BENCH_SMOKE:-}" ]; then
  cargo build --quiet -p local --example webhook_rate
  bin=target/debug/examples/webhook_rate; events=10
else
  cargo build --quiet --release -p local --example webhook_rate
  bin=target/release/examples/webhook_rate; events=${WEBHOOK_BENCH_EVENTS:-3000}
fi
. scripts/bench/emulators.sh

echo "## Partner webhooks through the dispatcher ($events events a phase)"
RUST_LOG=warn "$bin" "http://127.0.0.1:$moto_port" "$events"
