#!/usr/bin/env bash
# The chart's RBAC scope on the real API server. With watchNamespace set, Secrets (and writing the
# namespaced kinds) are a Role in that namespace: the ServiceAccount can read a Secret there and
# nowhere else, while the sigsci-kit.io kinds stay readable cluster-wide. The built operator,
# running with that ServiceAccount's token, starts (/readyz) and reconciles in the namespace. Without
# watchNamespace, the ClusterRole grants Secrets in every namespace (what operator/tests rely on).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
# shellcheck source=tests/lib/testbed.sh
source "$root/tests/lib/testbed.sh"
# shellcheck source=tests/lib/cargo.sh
source tests/lib/cargo.sh
# shellcheck source=tests/lib/process.sh
source tests/lib/process.sh
workspace_build
say() { echo "chart-rbac: $*"; }
fail() { say "$*" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/sigsci-chart-rbac.XXXXXX")
pid=""
sim_pid=""
releases=()
finish() {
  kc delete namespace "$watched" "$other" --wait=false >/dev/null 2>&1 || true
  if [[ -n "$pid" ]]; then terminate_within 5 "$pid" || true; fi
  if [[ -n "$sim_pid" ]]; then terminate_within 5 "$sim_pid" || true; fi
  for release in "${releases[@]-}"; do
    [[ -n "$release" ]] && "$helm" uninstall "${release%%/*}" --namespace "${release#*/}" --kubeconfig "$kubeconfig" >/dev/null 2>&1
  done
  rm -rf "$work"
}
# Namespaces cannot be deleted for good on the test bed (no controller-manager): fresh names per run.
watched="chart-rbac-team-a-$$"
other="chart-rbac-team-b-$$"
trap finish EXIT
kc create namespace "$watched" >/dev/null
kc create namespace "$other" >/dev/null
for namespace in "$watched" "$other"; do
  kc -n "$namespace" create secret generic sim-credentials \
    --from-literal=email=sim@example.com --from-literal=token=sim-token >/dev/null
done

install() { # install RELEASE NAMESPACE VALUES...
  local release=$1 namespace=$2
  shift 2
  releases+=("$release/$namespace")
  "$helm" upgrade --install "$release" charts/sigsci-operator --namespace "$namespace" --create-namespace \
    --kubeconfig "$kubeconfig" --set replicaCount=0 "$@" >/dev/null
}
# expect yes|no VERB RESOURCE[/SUBRESOURCE] [NAMESPACE]: what the API server's authorizer says
# for the account.
expect() {
  local want=$1 verb=$2 resource=$3 scope answer
  if [[ -n "${4-}" ]]; then scope=(-n "$4"); else scope=(--all-namespaces); fi
  if [[ "$resource" == */* ]]; then scope+=(--subresource "${resource#*/}"); fi
  answer=$(kc auth can-i "$verb" "${resource%%/*}" "${scope[@]}" --as "$user" 2>/dev/null || true)
  [[ "$answer" == "$want" ]] || fail "$user: can-i $verb $resource ${4:-(all namespaces)} is '$answer', expected $want"
}

# --- watchNamespace set ------------------------------------------------------------------------
install sigsci-operator-scoped chart-rbac-system --set watchNamespace="$watched" --set operator.leaderElection=false
user=system:serviceaccount:chart-rbac-system:sigsci-operator-scoped
for verb in get list watch; do
  expect yes "$verb" secrets "$watched"
  expect no "$verb" secrets "$other"
  expect no "$verb" secrets chart-rbac-system
  expect no "$verb" secrets
done
for kind in sigsciconnections agentalerts integrations sigscilists; do
  expect yes patch "$kind" "$watched"
  expect yes update "$kind/status" "$watched"
  expect no patch "$kind" "$other"
  expect no update "$kind/status" "$other"
  expect no update "$kind/finalizers" "$other"
  # Read cluster-wide: which object holds a remote object is decided across namespaces.
  expect yes list "$kind"
done
expect yes patch clustersigsciconnections
expect yes update clustersigsciconnections/status
# Not just the authorizer's answer: the request itself.
kc -n "$watched" get secret sim-credentials --as "$user" >/dev/null ||
  fail "$user cannot read a Secret in the watched namespace $watched"
if denied=$(kc -n "$other" get secret sim-credentials --as "$user" 2>&1); then
  fail "$user read a Secret in $other, outside the watched namespace"
fi
[[ "$denied" == *Forbidden* || "$denied" == *forbidden* ]] || fail "reading a Secret in $other failed, but not as forbidden: $denied"
say "watchNamespace=$watched: Secrets readable in $watched only (Role), kinds readable cluster-wide, writable in $watched only"

# The built operator as that ServiceAccount (its token, as the kubelet would mount it) starts,
# reports ready, and reconciles a connection in the watched namespace without a forbidden call.
scoped_kubeconfig="$work/kubeconfig"
cp "$kubeconfig" "$scoped_kubeconfig"
token=$(kc -n chart-rbac-system create token sigsci-operator-scoped --duration=1h)
"$kubectl" --kubeconfig "$scoped_kubeconfig" config set-credentials chart-rbac-scoped --token="$token" >/dev/null
"$kubectl" --kubeconfig "$scoped_kubeconfig" config set-context --current --user=chart-rbac-scoped >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
KUBECONFIG="$scoped_kubeconfig" target/release/sigsci-operator --metrics-addr "127.0.0.1:$port" \
  --leader-election=false --watch-namespace "$watched" --resync-seconds 5 >"$work/stdout" 2>"$work/log" &
pid=$!
ready=""
for _ in $(seq 100); do
  ready=$(curl -sS --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz" 2>/dev/null || true)
  [[ "$ready" == 200 ]] && break
  kill -0 "$pid" 2>/dev/null || fail "the operator exited; log: $(cat "$work/log")"
  sleep 0.2
done
[[ "$ready" == 200 ]] || fail "/readyz answered '$ready' for 20 s; log: $(cat "$work/log")"
[[ "$(curl -fsS --max-time 10 "http://127.0.0.1:$port/healthz")" == ok ]] || fail "/healthz does not answer ok"

start_simulator target/release/sigsci-kit "$work"
for namespace in "$watched" "$other"; do
  # shellcheck disable=SC2154  # sim_url: set by start_simulator
  kc -n "$namespace" apply -f - >/dev/null <<YAML
apiVersion: sigsci-kit.io/v1alpha1
kind: SigSciConnection
metadata: {name: sim}
spec:
  corp: testcorp
  apiURL: $sim_url
  credentialsSecretRef: {name: sim-credentials}
YAML
done
connection_ready=""
for _ in $(seq 150); do
  connection_ready=$(kc -n "$watched" get sigsciconnection sim \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
  [[ "$connection_ready" == True ]] && break
  sleep 0.2
done
[[ "$connection_ready" == True ]] || fail "the connection in $watched is not Ready (${connection_ready:-no status}); log: $(cat "$work/log")"
# One more resync (5 s) with the Secret and connection watches running: nothing may be denied.
sleep 6
if grep -i forbidden "$work/log"; then fail "the scoped operator was denied a call (above)"; fi
[[ -z "$(kc -n "$other" get sigsciconnection sim -o jsonpath='{.status.conditions}')" ]] ||
  fail "the operator watching $watched touched the connection in $other"
say "the operator with the scoped ServiceAccount: /readyz 200, connection in $watched Ready, $other untouched, nothing denied"

# --- defaults: one ClusterRole, Secrets in every namespace --------------------------------------
install sigsci-operator-cluster chart-rbac-system
user=system:serviceaccount:chart-rbac-system:sigsci-operator-cluster
for verb in get list watch; do expect yes "$verb" secrets; done
for kind in sigsciconnections clustersigsciconnections agentalerts integrations sigscilists; do
  expect yes patch "$kind"
  expect yes update "$kind/status"
  expect yes update "$kind/finalizers"
done
kc -n "$other" get secret sim-credentials --as "$user" >/dev/null || fail "$user (no watchNamespace) cannot read a Secret in $other"
roles=$(kc get roles --all-namespaces -l app.kubernetes.io/instance=sigsci-operator-cluster -o name)
[[ "$roles" == role.rbac.authorization.k8s.io/sigsci-operator-cluster-leader-election ]] ||
  fail "without watchNamespace the chart's Roles are not just the Lease's: $roles"
say "defaults: the ClusterRole grants Secrets and every kind in all namespaces"
