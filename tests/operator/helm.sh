#!/usr/bin/env bash
# Lints the chart, renders it, and (with the test bed's kubeconfig) has the real API server
# validate every rendered object with a server-side dry run.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
chart="$root/charts/sigsci-operator"
helm=${SIGSCI_KIT_TEST_HELM:?SIGSCI_KIT_TEST_HELM is not set: run tests/run.sh operator, or tests/services.sh up DIR k8s and source DIR/env}
kubectl=${SIGSCI_KIT_TEST_KUBECTL:?SIGSCI_KIT_TEST_KUBECTL is not set: run tests/run.sh operator, or tests/services.sh up DIR k8s and source DIR/env}
kubeconfig=${SIGSCI_KIT_TEST_KUBECONFIG:?SIGSCI_KIT_TEST_KUBECONFIG is not set: run tests/run.sh operator, or tests/services.sh up DIR k8s and source DIR/env}

"$helm" lint --strict "$chart"
for values in "" "--set replicaCount=0" "--set watchNamespace=team-a --set operator.leaderElection=false"; do
  # shellcheck disable=SC2086  # word splitting of the value flags is intended
  rendered=$("$helm" template sigsci-operator "$chart" --namespace sigsci-system $values)
  # The release namespace must exist for a namespaced dry run.
  "$kubectl" --kubeconfig "$kubeconfig" create namespace sigsci-system --dry-run=client -o yaml |
    "$kubectl" --kubeconfig "$kubeconfig" apply -f - >/dev/null
  printf '%s\n' "$rendered" | "$kubectl" --kubeconfig "$kubeconfig" apply --server-side --force-conflicts --field-manager=sigsci-chart-check --dry-run=server -f - >/dev/null
  echo "helm: template ${values:-(defaults)} validated by the API server"
done
