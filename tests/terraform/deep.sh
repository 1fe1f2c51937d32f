#!/usr/bin/env bash
# The deep Terraform check, opt-in (tests/run.sh does not call it): the module against the real AWS
# provider, built from its Go module (tests/terraform/build-provider.sh: ~26 min cold, a minute warm),
# and moto as AWS:
#   terraform validate (module and example) -> plan of examples/complete (two corps, everything)
#   -> apply of everything moto supports (below: all but the alarms, the TLS-only bucket policy and
#   the Athena workgroup) -> checks of what was made
#   -> a second plan that must show no changes -> destroy.
# Usage: tests/terraform/deep.sh     Times go to stdout and target/tf-deep/times.txt.
# Uses target/lambda/*/bootstrap.zip when scripts/package.sh has built them, stand-ins otherwise.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out="$root/target/tf-deep"
mkdir -p "$out"
: >"$out/times.txt"
export PATH="$root/target/tf-bin:$PATH"
tests/terraform/install-deps.sh

timed() { # timed LABEL COMMAND...: runs it, records its seconds
  local label=$1 started=$SECONDS
  shift
  echo "--- $label"
  "$@"
  echo "$label: $((SECONDS - started)) s" | tee -a "$out/times.txt"
}

# The provider build keeps its caches under target/tf-aws; cold it needs ~9 GB of memory.
timed "provider build" tests/terraform/build-provider.sh
plugins="$root/target/tf-aws/plugins"

[[ -x target/venv/bin/moto_server ]] || tests/lib/venv.sh
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sigsci-kit-tf-deep.XXXXXX")
cleanup() {
  tests/lib/moto.sh stop "$scratch" || true
  rm -rf "$scratch"
}
trap cleanup EXIT
tests/lib/moto.sh start "$scratch" >/dev/null
# shellcheck disable=SC1091
source "$scratch/moto.env"
endpoint=$SIGSCI_KIT_TEST_MOTO_URL

# No registry: the provider comes from the dev override, so no `terraform init` (modules: `get`).
cat >"$scratch/terraformrc" <<CONFIG
provider_installation {
  dev_overrides {
    "hashicorp/aws" = "$plugins"
  }
  direct {}
}
CONFIG
export TF_CLI_CONFIG_FILE="$scratch/terraformrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1

# A copy, so .terraform/, the state and the lock never land in the source tree.
cp -r terraform "$scratch/terraform"
rm -rf "$scratch/terraform/.terraform" "$scratch/terraform/examples/complete/.terraform"
example="$scratch/terraform/examples/complete"

# The packages scripts/package.sh builds, or stand-ins: moto stores a function's zip, never runs it.
zips="$scratch/zips"
for function in feed-export agent-health ack-url; do
  mkdir -p "$zips/$function"
  if [[ -f "target/lambda/$function/bootstrap.zip" ]]; then
    cp "target/lambda/$function/bootstrap.zip" "$zips/$function/bootstrap.zip"
  else
    target/venv/bin/python - "$zips/$function/bootstrap.zip" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as archive:
    info = zipfile.ZipInfo("bootstrap")
    info.external_attr = 0o755 << 16
    archive.writestr(info, "#!/bin/sh\necho stand-in\n")
PY
    echo "target/lambda/$function/bootstrap.zip not built: using a stand-in"
  fi
done

# Two corps: for_each over corps, one with its sites (enum projection) and rules, one without.
cat >"$example/moto.tfvars" <<TFVARS
aws_endpoint_url     = "$endpoint"
force_destroy        = true
secret_recovery_days = 0
feed_export_zip      = "$zips/feed-export/bootstrap.zip"
agent_health_zip     = "$zips/agent-health/bootstrap.zip"
ack_url_zip          = "$zips/ack-url/bootstrap.zip"
corps = {
  acme = {
    sites       = ["www", "api"]
    alarm_email = "soc@example.com"
    rules       = <<-YAML
      checks:
        low_traffic: {min_rps: 5}
      channels:
        - {name: slack, type: slack}
        - {name: console, type: console}
    YAML
  }
  beta = {}
}
TFVARS

tf() { terraform -chdir="$example" "$@"; }
plan_expect() { # plan_expect EXIT_CODE ARGS...: -detailed-exitcode is 0 no changes, 2 changes
  local want=$1 status=0
  shift
  tf plan -input=false -detailed-exitcode -var-file=moto.tfvars "$@" -out="$scratch/plan" >"$scratch/plan.log" 2>&1 || status=$?
  if ((status != want)); then
    cat "$scratch/plan.log"
    echo "terraform plan exited $status, expected $want" >&2
    return 1
  fi
  grep -E '^Plan:|No changes' "$scratch/plan.log" || true
}

validate() {
  terraform -chdir="$scratch/terraform" validate
  tf get >/dev/null
  tf validate
}
timed "validate" validate
timed "plan (everything, alarms included)" plan_expect 2 -var=create_alarms=true

# Applied: everything moto supports. Planned only (the provider checked them above), not applied:
# - the alarms (create_alarms=false): moto 5.2.5 does not route the provider's CloudWatch protocol;
# - the bucket policy: it denies every request without TLS, and moto serves plain HTTP (and enforces
#   it: object reads and writes get 403 once it is on, which is the policy doing its job);
# - the Athena workgroup: with skip_requesting_account_id the provider builds its ARN without an
#   account, and its tag listing fails on moto ("Does Not Exist").
not_on_moto='aws_cloudwatch_metric_alarm aws_s3_bucket_policy aws_athena_workgroup'
targets=()
while IFS= read -r address; do targets+=("-target=$address"); done < <(
  tf show -json "$scratch/plan" | target/venv/bin/python -c '
import json, sys
skip = set(sys.argv[1].split())
plan = json.load(sys.stdin)
for change in plan["resource_changes"]:
    if change["mode"] == "managed" and change["type"] not in skip:
        print(change["address"])
' "$not_on_moto")
echo "${#targets[@]} resources to apply (not on moto: $not_on_moto)"
timed "apply (all moto supports)" tf apply -input=false -auto-approve -var-file=moto.tfvars -var=create_alarms=false "${targets[@]}"

# What apply made, read back from moto: the rules carry the ack URL and the generated key's secret,
# and that secret holds a key the state never saw. (Values from the state: with -target the example's
# outputs, which name the workgroup too, are not written.)
tf show -json >"$scratch/state.json"
AWS_ENDPOINT_URL="$endpoint" target/venv/bin/python - "$scratch/state.json" "$example/terraform.tfstate" <<'PY'
import json, re, sys
import boto3

modules = json.load(open(sys.argv[1]))["values"]["root_module"]["child_modules"]
state = open(sys.argv[2]).read()
kits = {}
for module in modules:
    corp = re.fullmatch(r'module\.sigsci_kit\["(.+)"\]', module["address"]).group(1)
    # By address within the module: aws_lambda_function.function["feed_export"], ...
    kits[corp] = {r["address"].removeprefix(module["address"] + "."): r["values"] for r in module["resources"] if r["mode"] == "managed"}
assert set(kits) == {"acme", "beta"}, sorted(kits)
s3 = boto3.client("s3")
secrets = boto3.client("secretsmanager")
for corp, kit in sorted(kits.items()):
    bucket = kit["aws_s3_bucket.feed"]["bucket"]
    key = kit["aws_s3_object.rules"]["key"]
    ack_url = kit["aws_lambda_function_url.ack_url"]["function_url"]
    rules = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert rules["ack"]["base_url"] == ack_url.rstrip("/"), (corp, rules)
    reference = rules["ack"]["secret"].removeprefix("secretsmanager:")
    assert reference == kit['aws_secretsmanager_secret.this["ack_key"]']["arn"], (corp, reference)
    signing = json.loads(secrets.get_secret_value(SecretId=reference)["SecretString"])["key"]
    assert len(signing) == 64 and signing not in state, f"{corp}: the signing key is missing or in the state"
    for channel in rules.get("channels", []):
        if channel["type"] == "slack":
            assert channel["secret"] == "secretsmanager:" + kit['aws_secretsmanager_secret.this["channels"]']["arn"], channel
        if channel["type"] == "console":
            assert "secret" not in channel, channel
    environment = kit['aws_lambda_function.function["feed_export"]']["environment"][0]["variables"]
    assert environment["SIGSCI_KIT_FEED_LOCATION"] == f"s3://{bucket}/feed", environment
    print(f"{corp}: rules at s3://{bucket}/{key} point at {rules['ack']['base_url']}; signing key only in Secrets Manager")
PY

# The second plan must change nothing but what moto does not read back (each named here; anything
# else fails): Lambda's logging_config and S3 bucket / Glue database tags are not returned by moto
# 5.2.5, and the scheduler's policy, which names the functions, follows an update of them.
second_plan() {
  local status=0
  tf plan -input=false -detailed-exitcode -var-file=moto.tfvars -var=create_alarms=false "${targets[@]}" \
    -out="$scratch/plan2" >"$scratch/plan2.log" 2>&1 || status=$?
  if ((status == 0)); then
    echo "No changes."
    return 0
  fi
  if ((status != 2)); then
    cat "$scratch/plan2.log"
    return 1
  fi
  tf show -json "$scratch/plan2" | target/venv/bin/python -c '
import json, sys
# (resource type, attribute) pairs moto does not read back; policy only while it waits on them.
tolerated = {("aws_lambda_function", "logging_config"), ("aws_s3_bucket", "tags"), ("aws_s3_bucket", "tags_all"),
             ("aws_glue_catalog_database", "tags_all")}
problems = []
for change in json.load(sys.stdin)["resource_changes"]:
    actions = change["change"]["actions"]
    if change["mode"] != "managed" or actions in (["no-op"], ["read"]):
        continue
    before, after = change["change"]["before"] or {}, change["change"]["after"] or {}
    unknown = change["change"]["after_unknown"] or {}
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k) or unknown.get(k) is True)
    allowed = actions == ["update"] and all(
        (change["type"], k) in tolerated or (change["type"], k) == ("aws_iam_role_policy", "policy") and unknown.get(k) is True
        for k in changed)
    print(("tolerated (moto)" if allowed else "UNEXPECTED"), change["address"], actions, changed)
    if not allowed:
        problems.append(change["address"])
sys.exit(1 if problems else 0)
' || { cat "$scratch/plan2.log"; echo "the second plan has changes moto does not explain" >&2; return 1; }
}
timed "second plan (no changes)" second_plan
timed "destroy" tf destroy -input=false -auto-approve -var-file=moto.tfvars -var=create_alarms=false
echo "deep check passed; times in $out/times.txt"
