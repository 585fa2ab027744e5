#!/usr/bin/env bash
# Send pacing through the message sender (release build) against the sandbox, at 80 and
# at 1,000 msg/s: `local/examples/send_rate.rs`. Part of `make bench`; runs alone too.
#
# NOTE: moto answers about 50 DynamoDB requests a second and the sender makes three per
# message, so DynamoDB here is Dynoxide (a DynamoDB emulator in Rust, from crates.io,
# installed once into .tools/); SQS and KMS stay on moto.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
scripts/venv.sh
py=.venv/bin/python
free_port() { "$py" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

smoke=${BENCH_SMOKE:-}
if [ -n "$smoke" ]; then
  # The code path only: DynamoDB on moto, the debug build, tiny counts.
  cargo build --quiet -p local --example send_rate
  send_rate_bin=target/debug/examples/send_rate
else
  echo "==> installing dynoxide into .tools/ (first run only) and building send_rate" >&2
  cargo install dynoxide-rs --version 3.2.0 --locked --root .tools --quiet >&2
  cargo build --quiet --release -p local --example send_rate
  send_rate_bin=target/release/examples/send_rate
fi

moto_port=$(free_port)
.venv/bin/python scripts/emulator.py -H 127.0.0.1 -p "$moto_port" > /dev/null 2>&1 &
moto=$!
dynamodb=
if [ -z "$smoke" ]; then
  dynamodb_port=$(free_port)
  .tools/bin/dynoxide --port "$dynamodb_port" --log quiet > /dev/null 2>&1 &
  dynamodb=$!
fi
trap 'kill $moto $dynamodb 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  "$py" -c "import socket;socket.create_connection(('127.0.0.1',$moto_port),1)" 2>/dev/null && break
  sleep 0.2
done

send_rate() {
  if [ -n "$smoke" ]; then
    RUST_LOG=warn "$send_rate_bin" "http://127.0.0.1:$moto_port" "$@"
  else
    AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$dynamodb_port" RUST_LOG=warn \
      "$send_rate_bin" "http://127.0.0.1:$moto_port" "$@"
  fi
}
echo "## Pacing through the message sender, sandbox statuses off"
if [ -n "$smoke" ]; then
  send_rate 5 2 2 queue
  send_rate 10 2 2 direct
  exit 0
fi
# 80/s, Meta's default per number: end to end through the outbound-high queue on moto,
# four pollers.
send_rate 80 12 4 queue
# 1,000/s, the highest: a backlog handed to eight concurrent invocations in batches of
# ten, as Lambda's poller hands them over (moto's SQS cannot deliver 1,000 a second).
# Three runs: the machine's two cores are saturated, so the figure varies.
for _ in 1 2 3; do send_rate 1000 12 8 direct; done
