#!/usr/bin/env bash
# `make cost`: runs the tests that count each flow's AWS requests (against the emulator,
# recording every request, its answer and each phase's time), then prices them:
# scripts/cost.py, at the prices of infra/prices-us-east-1.json. The table is printed and
# kept in target/cost/report.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/venv.sh
mkdir -p target/cost
records="$root/target/cost/records.jsonl"
rm -f "$records"
echo "==> the counting tests (cargo test -p switchboard-tests --test system -- aws_requests_per_)" >&2
COST_RECORD="$records" cargo test --quiet --locked -p switchboard-tests --test system -- aws_requests_per_ >&2
python3 scripts/cost.py "$records" --markdown target/cost/report.md
