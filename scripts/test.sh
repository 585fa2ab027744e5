#!/usr/bin/env bash
# `make test`: everything CI checks, in the order that fails fastest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/venv.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> infra/template.yaml: cfn-lint (SAM and transformed)"
scripts/lint-template.sh

echo "==> infra/cdk: cdk synth offline, cfn-lint, the SAM template's resources"
scripts/cdk-check.sh

echo "==> docs/openapi.json: openapi-spec-validator (cargo test holds it to the code)"
.venv/bin/openapi-spec-validator docs/openapi.json

echo "==> cargo test (unit, and system tests against a moto emulator each test binary starts)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -eq 0 ]; then
  echo "==> schemathesis against a local stack (scripts/schemathesis.sh; ST_MAX_EXAMPLES for longer)"
  scripts/schemathesis.sh > "$log.st" 2>&1 || { cat "$log.st"; status=1; echo "FAILED: schemathesis"; }
  grep -E "^(Test cases:|  [0-9]+ generated)" -A1 "$log.st" | grep -v "^--" || true
  rm -f "$log.st"
fi
if [ "$status" -eq 0 ]; then
  # Every benchmark once, with tiny counts: one that no longer runs fails here, not when
  # someone next wants its figures.
  echo "==> benchmarks, smoke run (BENCH_SMOKE=1 scripts/bench.sh; figures meaningless)"
  BENCH_SMOKE=1 scripts/bench.sh > "$log.bench" 2>&1 || { cat "$log.bench"; status=1; echo "FAILED: the benchmark smoke run"; }
  rm -f "$log.bench"
fi
# One closing line for the whole run: cargo's own last line belongs to whichever test
# binary ran last (often doc tests with none).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;/) p += $i; if ($(i+1) ~ /^failed;/) f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
