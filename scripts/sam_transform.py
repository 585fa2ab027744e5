"""Prints the CloudFormation (JSON) that the SAM transform makes of a template, offline."""

import json
import os
import sys

from cfnlint.decode import decode
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator


def main(path: str) -> int:
    # The transform asks boto for a region; offline, say which.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    template, matches = decode(path)
    if matches:
        for m in matches:
            print(m, file=sys.stderr)
        return 1
    # As `sam package` does, local code paths become S3 locations before the transform.
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        uri = props.get("CodeUri")
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(uri, str):
            if not uri.startswith("s3://"):
                props["CodeUri"] = "s3://packaged-code/" + uri.strip("./")
    # Managed policies are referenced by ARN or inline here, so no IAM look-up is needed.
    translator = Translator(managed_policy_map={}, sam_parser=Parser())
    output = translator.translate(
        sam_template=template,
        parameter_values={"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"},
    )
    json.dump(output, sys.stdout, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
