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
smoke=${BENCH_SMOKE:-}
if [ -n "$smoke" ]; then
  # The code path only: DynamoDB on moto, the debug build, tiny counts.
  cargo build --quiet -p local --example send_rate
  send_rate_bin=target/debug/examples/send_rate
else
  cargo build --quiet --release -p local --example send_rate
  send_rate_bin=target/release/examples/send_rate
fi
. scripts/bench/emulators.sh

send_rate() { RUST_LOG=warn "$send_rate_bin" "http://127.0.0.1:$moto_port" "$@"; }
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
