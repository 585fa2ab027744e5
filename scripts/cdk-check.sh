#!/usr/bin/env bash
# The CDK app (infra/cdk) in `make test`, offline: installs Node.js 20+ with apt if it is
# missing, the pinned packages with `npm ci`, synthesizes with bundling skipped (no lookups,
# nothing built, nothing deployed), lints the output with cfn-lint (as written and after the
# SAM transform), and checks that it has exactly the SAM template's resources. Finally
# proves the comparison can fail: a synthesized template missing a resource is rejected.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/infra/cdk"

node_major() { node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/' || echo 0; }
if [ "$(node_major)" -lt 20 ] 2>/dev/null || ! command -v npm > /dev/null; then
  echo "==> Node.js 20 or later is missing; installing nodejs and npm with apt" >&2
  apt-get update -qq && apt-get install -y -qq nodejs npm > /dev/null
  if [ "$(node_major)" -lt 20 ]; then
    echo "cdk-check: aws-cdk-lib needs Node.js 20 or later; apt gave $(node --version)" >&2
    exit 1
  fi
fi
stamp=node_modules/.package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
npx tsc
SWITCHBOARD_SKIP_BUNDLING=1 npx cdk synth --no-lookups --no-notices --quiet --output "$out/cdk.out" \
  > "$out/synth.log" 2>&1 || { cat "$out/synth.log"; exit 1; }
synthesized="$out/cdk.out/Switchboard.template.json"
py="$root/.venv/bin/python"
"$root/.venv/bin/cfn-lint" --format parseable "$synthesized"
"$py" "$root/scripts/sam_transform.py" "$synthesized" > "$out/transformed.json"
"$root/.venv/bin/cfn-lint" --format parseable "$out/transformed.json"
"$py" "$root/scripts/cdk_compare.py" "$root/infra/template.yaml" "$synthesized"

# Self-check: a template that lost a resource (one nothing refers to) must not pass.
"$py" - "$synthesized" "$out/broken.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
del t["Resources"]["TenantErasureDlqAlarm"]
json.dump(t, open(sys.argv[2], "w"))
PY
if "$py" "$root/scripts/cdk_compare.py" "$root/infra/template.yaml" "$out/broken.json" 2> "$out/broken.log"; then
  echo "cdk-check: a CDK template missing a resource passed the comparison" >&2
  exit 1
fi
grep -q "only in the SAM template: TenantErasureDlqAlarm" "$out/broken.log" || { cat "$out/broken.log"; exit 1; }
# Bundling as `cdk synth` does it for a deploy, with a stand-in `cargo` on PATH (the real
# build needs the aarch64 target, which CI does not have): each function's asset is what
# `cargo lambda build --release --arm64 -p <crate>` left in its --lambda-dir.
mkdir -p "$out/bin"
cat > "$out/bin/cargo" <<'SH'
#!/usr/bin/env bash
echo "$*" >> "$CDK_CHECK_CALLS"
while [ $# -gt 0 ]; do
  case "$1" in
    -p) crate=$2; shift ;;
    --lambda-dir) dir=$2; shift ;;
  esac
  shift
done
mkdir -p "$dir/$crate" && echo "bootstrap of $crate" > "$dir/$crate/bootstrap"
SH
chmod +x "$out/bin/cargo"
CDK_CHECK_CALLS="$out/calls" PATH="$out/bin:$PATH" npx cdk synth --no-lookups --no-notices --quiet \
  --output "$out/bundled" > "$out/bundled.log" 2>&1 || { cat "$out/bundled.log"; exit 1; }
"$py" - "$out/bundled" "$out/calls" "$root/infra/template.yaml" <<'PY'
import json, pathlib, sys
from cfnlint.decode import decode
out, calls = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]).read_text().splitlines()
sam, _ = decode(sys.argv[3])
crates = {
    name: pathlib.Path(r["Properties"]["CodeUri"]).name
    for name, r in sam["Resources"].items()
    if r["Type"] == "AWS::Serverless::Function"
}
template = json.loads((out / "Switchboard.template.json").read_text())
assets = json.loads((out / "Switchboard.assets.json").read_text())["files"]
problems = []
for name, resource in template["Resources"].items():
    if resource["Type"] != "AWS::Serverless::Function":
        continue
    key = resource["Properties"]["CodeUri"]["Key"]
    asset = assets.get(key.removesuffix(".zip"))
    if asset is None:
        problems.append(f"{name}: no asset {key}")
        continue
    bootstrap = out / asset["source"]["path"] / "bootstrap"
    crate = bootstrap.read_text().removeprefix("bootstrap of ").strip() if bootstrap.exists() else None
    if crate is None:
        problems.append(f"{name}: its asset has no bootstrap")
    elif crate != crates.get(name):
        problems.append(f"{name}: its asset holds {crate}, not {crates.get(name)}")
    elif f"lambda build --release --arm64 --locked -p {crate} --lambda-dir" not in " ".join(
        c for c in calls if f"-p {crate} " in c
    ):
        problems.append(f"{name}: {crate} was not built for arm64 in release")
if len(calls) != len(crates):
    problems.append(f"{len(calls)} builds for {len(crates)} functions")
if problems:
    sys.exit("\n".join(problems))
print(f"cdk-check: bundling ok ({len(calls)} cargo lambda builds)")
PY
echo "cdk-check: ok"
