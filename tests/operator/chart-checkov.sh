#!/usr/bin/env bash
# checkov on the rendered chart (defaults; watchNamespace with every optional object on). A failed
# check fails the test; a check the chart does not meet is skipped only by a checkov.io/skipN
# annotation giving the reason (templates/deployment.yaml), and a skip without one fails too.
# checkov runs from the terraform suite's venv (target/venv-checkov, the same pinned version).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/lib/testbed.sh
source "$root/tests/lib/testbed.sh"
say() { echo "chart-checkov: $*"; }

venv="$root/target/venv-checkov"
"$root/tests/lib/venv.sh" "$venv" tests/terraform/requirements.txt
work=$(mktemp -d "${TMPDIR:-/tmp}/sigsci-chart-checkov.XXXXXX")
trap 'rm -rf "$work"' EXIT

check() { # check NAME HELM-ARGS...
  local name=$1
  shift
  "$helm" template sigsci-operator "$root/charts/sigsci-operator" --namespace sigsci-system "$@" >"$work/$name.yaml"
  # --skip-download: no guideline or policy downloads (offline, and the result must not depend on them).
  # Exit status 1 means failed checks, which the report below names; anything else is checkov failing.
  local status=0
  "$venv/bin/checkov" -f "$work/$name.yaml" --framework kubernetes --skip-download --output json \
    >"$work/$name.json" 2>"$work/$name.err" || status=$?
  if ((status > 1)); then
    say "checkov failed on the $name render (exit $status): $(cat "$work/$name.err")" >&2
    return 1
  fi
  "$venv/bin/python" - "$work/$name.json" "$name" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
name = sys.argv[2]
results, summary = report["results"], report["summary"]
bad = []
for failed in results.get("failed_checks", []):
    bad.append(f"FAILED {failed['check_id']} ({failed['check_name']}) on {failed['resource']}")
skipped = results.get("skipped_checks", [])
for skip in skipped:
    reason = skip["check_result"].get("suppress_comment", "")
    if len(reason) < 20 or reason == "No comment provided":
        bad.append(f"SKIPPED WITHOUT A REASON {skip['check_id']} on {skip['resource']}: {reason!r}")
if summary["parsing_errors"] or summary["resource_count"] == 0:
    bad.append(f"checkov did not read the render: {summary}")
if bad:
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
ids = sorted({s["check_id"] for s in skipped})
print(f"chart-checkov: {name}: {summary['passed']} passed, 0 failed, {len(skipped)} skipped with a reason ({', '.join(ids)})")
PY
}
check defaults
check scoped --set watchNamespace=team-a --set podDisruptionBudget.enabled=true \
  --set networkPolicy.egress.restrict=true --set metrics.serviceMonitor.enabled=true --set replicaCount=2
