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
py=.venv/bin/python
free_port() { "$py" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

smoke=${BENCH_SMOKE:-}
if [ -n "$smoke" ]; then
  cargo build --quiet -p local --example webhook_rate
  bin=target/debug/examples/webhook_rate; events=10
else
  echo "==> installing dynoxide into .tools/ (first run only) and building webhook_rate" >&2
  cargo install dynoxide-rs --version 3.2.0 --locked --root .tools --quiet >&2
  cargo build --quiet --release -p local --example webhook_rate
  bin=target/release/examples/webhook_rate; events=${WEBHOOK_BENCH_EVENTS:-1000}
fi

moto_port=$(free_port)
.venv/bin/python scripts/emulator.py -H 127.0.0.1 -p "$moto_port" > /dev/null 2>&1 &
moto=$!
dynamodb=
if [ -z "$smoke" ]; then
  dynamodb_port=$(free_port)
  .tools/bin/dynoxide --port "$dynamodb_port" --log quiet > /dev/null 2>&1 &
  dynamodb=$!
  export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$dynamodb_port"
fi
trap 'kill $moto $dynamodb 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  "$py" -c "import socket;socket.create_connection(('127.0.0.1',$moto_port),1)" 2>/dev/null && break
  sleep 0.2
done

echo "## Partner webhooks through the dispatcher ($events events a phase)"
RUST_LOG=warn "$bin" "http://127.0.0.1:$moto_port" "$events"
