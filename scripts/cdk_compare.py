"""Checks that the CDK app's template is the SAM template: after the SAM transform both have
the same resources (logical id and type), and in the CDK one every function's code is a
CDK asset, not a local path.

    cdk_compare.py <infra/template.yaml> <cdk.out/Switchboard.template.json>
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def transformed(path: str) -> dict:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sam_transform.py"), path],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)["Resources"]


def main(sam_path: str, cdk_path: str) -> int:
    sam = {(k, v["Type"]) for k, v in transformed(sam_path).items()}
    cdk = {(k, v["Type"]) for k, v in transformed(cdk_path).items()}
    problems = [f"only in the SAM template: {k} ({t})" for k, t in sorted(sam - cdk)]
    problems += [f"only in the CDK template: {k} ({t})" for k, t in sorted(cdk - sam)]
    functions = 0
    for name, resource in json.loads(Path(cdk_path).read_text())["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        functions += 1
        uri = resource["Properties"].get("CodeUri")
        bucket = json.dumps(uri.get("Bucket")) if isinstance(uri, dict) else ""
        if "cdk-" not in bucket or not str(uri.get("Key", "")).endswith(".zip"):
            problems.append(f"{name}: CodeUri is not a CDK asset: {uri!r}")
    if functions == 0:
        problems.append("the CDK template has no functions")
    for problem in problems:
        print(f"cdk-compare: {problem}", file=sys.stderr)
    if not problems:
        print(f"cdk-compare: ok ({len(cdk)} resources after the SAM transform, {functions} functions as assets)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
