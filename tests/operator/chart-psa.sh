#!/usr/bin/env bash
# The chart's pod against Pod Security admission `restricted` on the real API server: the
# Deployment's pod template, created as a Pod in a namespace that enforces `restricted`, is admitted
# (admission needs no kubelet). A control pod that breaks the profile is rejected there, so the
# namespace really enforces it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/lib/testbed.sh
source "$root/tests/lib/testbed.sh"
say() { echo "chart-psa: $*"; }
fail() { say "$*" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/sigsci-chart-psa.XXXXXX")
trap 'rm -rf "$work"' EXIT
namespace=chart-psa-restricted
kc apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: $namespace
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/enforce-version: latest
YAML

# pod_from_chart NAME [HELM ARGS...]: the rendered Deployment's pod template as a Pod manifest.
pod_from_chart() {
  local name=$1
  shift
  "$helm" template sigsci-operator "$root/charts/sigsci-operator" --namespace "$namespace" "$@" |
    "$root/target/venv/bin/python" -c '
import json, sys, yaml
name = sys.argv[1]
deployments = [d for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] == "Deployment"]
assert len(deployments) == 1, deployments
template = deployments[0]["spec"]["template"]
print(json.dumps({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {**template["metadata"], "name": name}, "spec": template["spec"]}))
' "$name"
}

# admit NAME FILE: creates the Pod for real (admission runs on create), then deletes it again (with
# no node it never starts, so it goes at once).
admit() {
  kc -n "$namespace" create -f "$2" >/dev/null 2>"$work/$1.err" || return 1
  kc -n "$namespace" delete pod "$1" --wait=false >/dev/null
}

pod_from_chart chart-defaults >"$work/defaults.json"
admit chart-defaults "$work/defaults.json" || fail "the chart's pod is rejected by PodSecurity restricted: $(cat "$work/chart-defaults.err")"
pod_from_chart chart-scoped --set watchNamespace=team-a --set-string podLabels.team=a >"$work/scoped.json"
admit chart-scoped "$work/scoped.json" || fail "the chart's pod (watchNamespace, podLabels) is rejected: $(cat "$work/chart-scoped.err")"
say "the chart's pod is admitted in a namespace enforcing restricted"

# Controls: the same pod with one requirement of the profile broken each time must be rejected.
control() { # control NAME WHAT PYTHON-STATEMENT-ON-pod
  "$root/target/venv/bin/python" -c '
import json, sys
pod = json.load(open(sys.argv[1]))
pod["metadata"]["name"] = sys.argv[2]
container = pod["spec"]["containers"][0]
exec(sys.argv[3])
print(json.dumps(pod))' "$work/defaults.json" "$1" "$3" >"$work/$1.json"
  if admit "$1" "$work/$1.json"; then
    fail "a pod with $2 was admitted: the namespace does not enforce restricted"
  fi
  grep -q 'violates PodSecurity "restricted:latest"' "$work/$1.err" ||
    fail "a pod with $2 was rejected, but not by PodSecurity: $(cat "$work/$1.err")"
}
control control-escalation "allowPrivilegeEscalation: true" 'container["securityContext"]["allowPrivilegeEscalation"] = True'
control control-capabilities "capabilities not dropped" 'del container["securityContext"]["capabilities"]'
control control-root "runAsNonRoot unset" 'del pod["spec"]["securityContext"]["runAsNonRoot"]'
control control-seccomp "no seccomp profile" 'del pod["spec"]["securityContext"]["seccompProfile"]'
say "controls (privilege escalation, capabilities, root, seccomp) are rejected: admission enforces restricted"
