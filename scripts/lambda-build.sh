#!/usr/bin/env bash
# `make lambda`: release builds of every function with cargo-lambda, as `sam build` would
# (target/lambda/<function>/bootstrap). Pass --arm64 for the deployed architecture; that
# needs the aarch64-unknown-linux-gnu Rust target (`rustup target add aarch64-unknown-linux-gnu`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/venv.sh requirements-lambda.txt .venv-lambda
# cargo-lambda finds zig through `python3 -m ziglang`: the venv's python must come first.
export PATH="$root/.venv-lambda/bin:$PATH"
packages=()
for dir in functions/*/; do
  packages+=(-p "$(basename "$dir")")
done
cargo lambda build --release "${packages[@]}" "$@"
