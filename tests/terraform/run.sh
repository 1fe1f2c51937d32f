#!/usr/bin/env bash
# Terraform suite (no services): fmt, checkov and the structural checks of terraform/ and its example.
#   tests/run.sh terraform      or directly: tests/terraform/run.sh
# The real-provider check (validate/plan/apply against moto) is opt-in: tests/terraform/deep.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# target/tf-bin holds the terraform install-deps.sh builds where the machine has none.
export PATH="$root/target/tf-bin:$PATH"
"$root/tests/terraform/install-deps.sh"
# A user's CLI config (plugin caches, credentials helpers) has no business in these checks.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sigsci-kit-terraform.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
: >"$scratch/terraformrc"
export TF_CLI_CONFIG_FILE="$scratch/terraformrc" CHECKPOINT_DISABLE=1

echo "--- terraform fmt -check -recursive terraform"
if ! terraform fmt -check -recursive -diff terraform; then
  echo "terraform fmt: the files above are not formatted (run: terraform fmt -recursive terraform)" >&2
  exit 1
fi

echo "--- checkov (target/venv-checkov)"
# Its own venv: checkov pins many packages that would fight the test venv's (moto, boto3).
venv="$root/target/venv-checkov"
"$root/tests/lib/venv.sh" "$venv" tests/terraform/requirements.txt
# Every skip must say why: #checkov:skip=ID:reason.
if grep -rn --include='*.tf' 'checkov:skip' terraform | grep -Ev '#checkov:skip=CKV2?_[A-Z0-9_]+:.{12,}'; then
  echo "checkov: the skips above give no reason (#checkov:skip=ID:why)" >&2
  exit 1
fi
# --skip-download: no guideline or policy downloads (offline, and the result must not depend on them).
"$venv/bin/checkov" --directory terraform --framework terraform --compact --quiet --skip-download

echo "--- structure (environment contract, IAM scoping, schedules, packaging, metrics)"
"$venv/bin/python" tests/terraform/structure.py "$root"
"$venv/bin/python" tests/terraform/structure.py "$root" --self-test
