#!/usr/bin/env bash
# Creates a Python venv with pinned tools if it is missing or stale; quiet when nothing
# changed.
#   scripts/venv.sh                                  .venv from requirements-dev.txt (moto, cfn-lint)
#   scripts/venv.sh requirements-lambda.txt .venv-lambda   cargo-lambda and zig, for `make lambda`
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
requirements="$root/${1:-requirements-dev.txt}"
venv="$root/${2:-.venv}"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

echo "==> installing $(basename "$requirements") into $(basename "$venv")" >&2
if ! python3 -m venv "$venv" 2>/dev/null; then
  # Debian's python3 ships venv separately.
  echo "==> python3 -m venv failed; installing python3-venv with apt" >&2
  apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
echo "$want" > "$stamp"
