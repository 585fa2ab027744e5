// The CDK app: infra/template.yaml, included as it is (CfnInclude), so that the SAM
// template stays the one source of truth; each function's CodeUri is replaced by an asset
// that `cargo lambda build` produces (arm64, release), as `sam build` would.
//
//   cdk synth      builds every function, then writes cdk.out/
//   cdk deploy     the same stack as `sam deploy`, through CDK's bootstrap bucket
//
// `scripts/cdk-check.sh` (in `make test`) synthesizes offline with bundling skipped
// (SWITCHBOARD_SKIP_BUNDLING=1).

import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { App, AssetHashType, CfnResource, DefaultStackSynthesizer, DockerImage, Stack } from "aws-cdk-lib";
import { Asset } from "aws-cdk-lib/aws-s3-assets";
import { CfnInclude } from "aws-cdk-lib/cloudformation-include";

// build/bin/switchboard.js → the repository.
const repo = path.resolve(__dirname, "..", "..", "..", "..");
const template = path.join(repo, "infra", "template.yaml");

// Source that does not make a function: left out of the assets' fingerprint.
const notSource = [
  ".git", "target", ".venv", ".venv-lambda", ".tools", ".dev", "node_modules",
  "infra/cdk/build", "infra/cdk/cdk.out", ".aws-sam",
];

/** Builds one function with cargo lambda into `outputDir` (its `bootstrap`). */
function cargoLambda(crate: string, outputDir: string): boolean {
  const lambdaDir = fs.mkdtempSync(path.join(os.tmpdir(), "switchboard-lambda-"));
  execFileSync(
    "cargo",
    ["lambda", "build", "--release", "--arm64", "--locked", "-p", crate, "--lambda-dir", lambdaDir],
    { cwd: repo, stdio: "inherit" },
  );
  fs.copyFileSync(path.join(lambdaDir, crate, "bootstrap"), path.join(outputDir, "bootstrap"));
  fs.rmSync(lambdaDir, { recursive: true, force: true });
  return true;
}

// SWITCHBOARD_SKIP_BUNDLING=1: synthesize without building (offline checks); the assets
// then stand for code that was not built, so such a cdk.out is not deployable.
const skipBundling = process.env.SWITCHBOARD_SKIP_BUNDLING === "1";
const app = new App();
if (skipBundling) {
  // Set here, not with `-c`: the CLI refuses `aws:` context keys.
  app.node.setContext("aws:cdk:bundling-stacks", []);
}
const stack = new Stack(app, "Switchboard", {
  description: "Switchboard (CDK view of infra/template.yaml)",
  synthesizer: new DefaultStackSynthesizer({ generateBootstrapVersionRule: false }),
});
const included = new CfnInclude(stack, "Template", { templateFile: template });

const functions = included.node
  .findAll()
  .filter((c): c is CfnResource => CfnResource.isCfnResource(c))
  .filter((r) => r.cfnResourceType === "AWS::Serverless::Function");
if (functions.length === 0) {
  throw new Error(`no AWS::Serverless::Function in ${template}`);
}
for (const fn of functions) {
  const codeUri = (fn as unknown as { codeUri?: unknown }).codeUri;
  if (typeof codeUri !== "string") {
    throw new Error(`${fn.logicalId}: CodeUri is not a path (${JSON.stringify(codeUri)})`);
  }
  const crate = path.basename(codeUri);
  const code = new Asset(stack, `${crate}-code`, {
    path: repo,
    exclude: notSource,
    assetHashType: AssetHashType.SOURCE,
    bundling: {
      // Never pulled: the local build runs first and always succeeds or throws.
      image: DockerImage.fromRegistry("public.ecr.aws/sam/build-provided.al2023"),
      // What the local build runs; as part of the asset's hash, it also keeps the 14
      // assets (one source, the workspace) from being taken for one another.
      command: ["cargo", "lambda", "build", "--release", "--arm64", "--locked", "-p", crate],
      local: { tryBundle: (outputDir: string) => cargoLambda(crate, outputDir) },
    },
  });
  fn.addPropertyOverride("CodeUri", { Bucket: code.s3BucketName, Key: code.s3ObjectKey });
  // `sam build`'s instruction; the asset is already built.
  fn.addOverride("Metadata.BuildMethod", undefined);
}

app.synth();
