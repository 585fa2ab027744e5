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

echo "==> cargo test (unit, and system tests against a moto emulator each test binary starts)"
cargo test --workspace --locked
