#!/usr/bin/env bash
# Lints the chart, renders it, and (with the test bed's kubeconfig) has the real API server
# validate every rendered object with a server-side dry run.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
chart="$root/charts/sigsci-operator"
# shellcheck source=tests/lib/testbed.sh
source "$root/tests/lib/testbed.sh"

"$helm" lint --strict "$chart"
for values in "" "--set replicaCount=0" "--set watchNamespace=team-a --set operator.leaderElection=false"; do
  # shellcheck disable=SC2086  # word splitting of the value flags is intended
  rendered=$("$helm" template sigsci-operator "$chart" --namespace sigsci-system $values)
  # The release namespace, and the watched one (its Role), must exist for a namespaced dry run.
  for namespace in sigsci-system team-a; do
    "$kubectl" --kubeconfig "$kubeconfig" create namespace "$namespace" --dry-run=client -o yaml |
      "$kubectl" --kubeconfig "$kubeconfig" apply -f - >/dev/null
  done
  printf '%s\n' "$rendered" | "$kubectl" --kubeconfig "$kubeconfig" apply --server-side --force-conflicts --field-manager=sigsci-chart-check --dry-run=server -f - >/dev/null
  echo "helm: template ${values:-(defaults)} validated by the API server"
done

# Two releases in one namespace: no object of one may carry a name of the other (ServiceAccount,
# RBAC, Service, the Lease the operator is told to take), and pod annotations and labels apply.
render_names() {
  "$helm" template "$1" "$chart" --namespace sigsci-system --set-string podAnnotations.team=soc \
    --set-string podLabels.cost-centre=sec |
    "$root/target/venv/bin/python" -c '
import sys, yaml
for doc in yaml.safe_load_all(sys.stdin):
    if not doc:
        continue
    print(doc["kind"], doc["metadata"]["name"])
    if doc["kind"] == "Deployment":
        pod = doc["spec"]["template"]
        assert pod["metadata"]["annotations"] == {"team": "soc"}, pod["metadata"]
        assert pod["metadata"]["labels"]["cost-centre"] == "sec", pod["metadata"]
        print("ServiceAccount", pod["spec"]["serviceAccountName"])
        lease = [a for a in pod["spec"]["containers"][0]["args"] if a.startswith("--lease-name=")]
        print("Lease", lease[0].split("=", 1)[1])
'
}
first=$(render_names soc-a | sort -u)
second=$(render_names soc-b | sort -u)
shared=$(comm -12 <(printf '%s\n' "$first") <(printf '%s\n' "$second"))
if [[ -n "$shared" ]]; then
  echo "two releases in one namespace collide on: $shared" >&2
  exit 1
fi
echo "helm: two releases in one namespace share no object name, pod annotations and labels apply"
