#!/usr/bin/env bash
# Quick end-to-end check of the k8s test bed: starts it in a temporary
# directory, talks to it with the cached kubectl and helm, and stops it.
# Exits non-zero on the first failed check.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

work=$(cd "$(mktemp -d "${TMPDIR:-/tmp}/sigsci-kit-k8s-smoke.XXXXXX")" && pwd -P)
passed=0

finish() {
  local status=$?
  if [[ $status -ne 0 ]]; then
    echo "k8s smoke: FAILED; last lines of the server logs:" >&2
    tail -n 15 "$work"/bed/*.log >&2 2>/dev/null || true
  fi
  "$K8S_DIR/stop.sh" "$work/bed" || status=1
  local pid
  for pid in ${SIGSCI_KIT_TEST_KUBE_PIDS:-}; do
    if testbed_process "$pid" "$work/bed"; then
      echo "k8s smoke: FAIL - stop.sh left pid $pid running" >&2
      status=1
    fi
  done
  rm -rf "$work"
  exit "$status"
}
trap finish EXIT

pass() {
  passed=$((passed + 1))
  echo "k8s smoke: ok - $*"
}
fail() {
  echo "k8s smoke: FAIL - $*" >&2
  exit 1
}

"$K8S_DIR/start.sh" "$work/bed"
# shellcheck source=/dev/null  # written by start.sh
source "$work/bed/env"
kubectl() { "$SIGSCI_KIT_TEST_KUBECTL" "$@"; }
helm() { "$SIGSCI_KIT_TEST_HELM" --kubeconfig "$SIGSCI_KIT_TEST_KUBECONFIG" "$@"; }
[[ "$KUBECONFIG" == "$SIGSCI_KIT_TEST_KUBECONFIG" && -n "$SIGSCI_KIT_TEST_KUBE_PIDS" ]] ||
  fail "env file lacks the kubeconfig or pid variables"

version=$(kubectl get --raw /version)
git_version=$(sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p' <<<"$version")
[[ "$git_version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "/version gitVersion '$git_version' is not semver: $version"
[[ "$git_version" == "$KUBE_VERSION" ]] || fail "/version says $git_version, expected $KUBE_VERSION"
pass "/version is $git_version"

kubectl create namespace sigsci-kit-smoke >/dev/null
kubectl get namespace sigsci-kit-smoke -o name | grep -qx namespace/sigsci-kit-smoke ||
  fail "namespace not found after creating it"
pass "namespace created"

kubectl apply -f - >/dev/null <<'YAML'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.sigsci-kit.test
spec:
  group: smoke.sigsci-kit.test
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
YAML
kubectl wait --for condition=Established --timeout=30s crd/widgets.smoke.sigsci-kit.test >/dev/null
pass "CRD established"

kubectl apply -n sigsci-kit-smoke -f - >/dev/null <<'YAML'
apiVersion: smoke.sigsci-kit.test/v1
kind: Widget
metadata: {name: first}
spec: {size: 3}
YAML
size=$(kubectl get widget first -n sigsci-kit-smoke -o jsonpath='{.spec.size}')
[[ "$size" == 3 ]] || fail "custom object reads back size '$size', expected 3"
if kubectl apply -n sigsci-kit-smoke -f - >/dev/null 2>&1 <<'YAML'; then
apiVersion: smoke.sigsci-kit.test/v1
kind: Widget
metadata: {name: invalid}
spec: {size: 0}
YAML
  fail "a custom object violating the CRD schema was accepted"
fi
pass "custom object stored and schema enforced"

# RBAC: the admin may, a client-cert user without bindings may not, and a
# service account token is denied until a RoleBinding grants it.
[[ "$(kubectl auth can-i list secrets -n sigsci-kit-smoke)" == yes ]] || fail "admin may not list secrets"
answer=$(kubectl --kubeconfig "$SIGSCI_KIT_TEST_USER_KUBECONFIG" auth can-i list secrets -n sigsci-kit-smoke || true)
[[ "$answer" == no ]] || fail "user without bindings: can-i list secrets said '$answer', expected no"
if kubectl --kubeconfig "$SIGSCI_KIT_TEST_USER_KUBECONFIG" get secrets -n sigsci-kit-smoke >/dev/null 2>"$work/denied"; then
  fail "user without bindings could list secrets"
fi
grep -q Forbidden "$work/denied" || fail "expected Forbidden, got: $(cat "$work/denied")"
pass "RBAC denies a user without bindings"

kubectl create serviceaccount smoke -n sigsci-kit-smoke >/dev/null
token=$(kubectl create token smoke -n sigsci-kit-smoke --duration=10m)
server=$(kubectl config view -o jsonpath='{.clusters[0].cluster.server}')
# No kubeconfig, so no client certificate: the token alone authenticates.
as_sa() {
  kubectl --kubeconfig=/dev/null --server="$server" \
    --certificate-authority="$work/bed/certs/serving-ca.crt" --token="$token" "$@"
}
who=$(as_sa auth whoami -o jsonpath='{.status.userInfo.username}')
[[ "$who" == system:serviceaccount:sigsci-kit-smoke:smoke ]] || fail "token authenticates as '$who'"
answer=$(as_sa auth can-i get widgets -n sigsci-kit-smoke || true)
[[ "$answer" == no ]] || fail "service account before binding: can-i said '$answer', expected no"
kubectl create role widget-reader -n sigsci-kit-smoke --verb=get --resource=widgets.smoke.sigsci-kit.test >/dev/null
kubectl create rolebinding widget-reader -n sigsci-kit-smoke --role=widget-reader \
  --serviceaccount=sigsci-kit-smoke:smoke >/dev/null
answer=$(as_sa auth can-i get widgets -n sigsci-kit-smoke || true)
[[ "$answer" == yes ]] || fail "service account after binding: can-i said '$answer', expected yes"
pass "service account token works and RBAC bindings take effect"

helm_version=$(helm version --short)
[[ "$helm_version" == "$HELM_VERSION"* ]] || fail "helm version says '$helm_version', expected $HELM_VERSION"
pass "helm version $helm_version"

# A chart with a kubeVersion constraint fails unless /version is semver.
helm create "$work/chart" >/dev/null
sed -i 's/^version: .*/version: 0.1.0\nkubeVersion: ">= 1.30.0-0"/' "$work/chart/Chart.yaml"
helm lint "$work/chart" >/dev/null
helm install smoke "$work/chart" -n sigsci-kit-smoke >/dev/null
kubectl get deployment smoke-chart -n sigsci-kit-smoke -o name >/dev/null ||
  fail "helm install did not create the deployment"
pass "helm lint and install of a chart with a kubeVersion constraint"

echo "k8s smoke: $passed passed, 0 failed"
