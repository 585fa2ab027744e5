#!/usr/bin/env bash
# Lints infra/template.yaml with cfn-lint, then lints the CloudFormation that the SAM
# transform produces (cfn-lint alone misses undefined !Ref/!GetAtt/${} targets in SAM
# resources). Finally proves the check can fail: a copy with a dangling reference must
# be rejected.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py="$root/.venv/bin/python"
template="${1:-$root/infra/template.yaml}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

lint() {
  "$root/.venv/bin/cfn-lint" --format parseable "$1"
  "$py" "$root/scripts/sam_transform.py" "$1" > "$out/transformed.json"
  "$root/.venv/bin/cfn-lint" --format parseable "$out/transformed.json"
}

lint "$template"

# Self-check: the same pipeline must reject a reference to a resource that does not exist.
sed 's/!GetAtt TenantsTable.Arn/!GetAtt NoSuchTable.Arn/' "$template" > "$out/broken.yaml"
if lint "$out/broken.yaml" > /dev/null 2>&1; then
  echo "lint-template: a template with a dangling reference passed the lint" >&2
  exit 1
fi
echo "lint-template: ok"
