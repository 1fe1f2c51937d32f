#!/usr/bin/env bash
# The built `sigsci-operator` binary against the test bed: it takes the leader Lease, serves
# /health and /metrics, logs JSON lines, and on SIGTERM stops and hands the Lease back.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
kubectl=${SIGSCI_KIT_TEST_KUBECTL:?SIGSCI_KIT_TEST_KUBECTL is not set: run tests/run.sh}
kubeconfig=${SIGSCI_KIT_TEST_KUBECONFIG:?SIGSCI_KIT_TEST_KUBECONFIG is not set: run tests/run.sh}
source tests/lib/cargo.sh
workspace_build
kc() { "$kubectl" --kubeconfig "$kubeconfig" "$@"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/sigsci-operator-bin.XXXXXX")
pid=""
finish() {
  # A SIGTERM'd operator's status must not become the script's (errexit applies inside the trap).
  if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap finish EXIT

kc apply --server-side -f charts/sigsci-operator/crds/ >/dev/null
kc create namespace sigsci-system --dry-run=client -o yaml | kc apply -f - >/dev/null
lease="sigsci-operator-binary-$$"
port=$((20000 + RANDOM % 20000))

KUBECONFIG="$kubeconfig" POD_NAMESPACE=sigsci-system POD_NAME=binary-smoke \
  target/release/sigsci-operator --metrics-addr "127.0.0.1:$port" --lease-name "$lease" \
  >"$work/stdout" 2>"$work/log" &
pid=$!

for _ in $(seq 100); do
  holder=$(kc -n sigsci-system get lease "$lease" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)
  [[ "$holder" == binary-smoke ]] && break
  sleep 0.2
done
[[ "$holder" == binary-smoke ]] || { echo "operator-binary: lease not taken; log:" >&2; cat "$work/log" >&2; exit 1; }

[[ "$(curl -fsS "http://127.0.0.1:$port/health")" == ok ]]
curl -fsS "http://127.0.0.1:$port/metrics" | grep -q '^# EOF'
# Every log line is a JSON object.
head -n1 "$work/log" | grep -q '^{".*}$' || { echo "operator-binary: not JSON: $(head -n1 "$work/log")" >&2; exit 1; }

kill -TERM "$pid"
wait "$pid"
pid=""
holder=$(kc -n sigsci-system get lease "$lease" -o jsonpath='{.spec.holderIdentity}')
[[ -z "$holder" ]] || { echo "operator-binary: lease still held by $holder after SIGTERM" >&2; exit 1; }
kc -n sigsci-system delete lease "$lease" >/dev/null
echo "operator-binary: lease taken, /health and /metrics served, JSON logs, lease released on SIGTERM"
