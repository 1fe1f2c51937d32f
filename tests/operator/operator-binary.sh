#!/usr/bin/env bash
# The built `sigsci-operator` binary against the test bed: it takes the leader Lease, serves
# /health and /metrics, logs JSON lines, reconciles (a connection to a simulator becomes Ready),
# and on SIGTERM stops and hands the Lease back.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
# shellcheck source=tests/lib/testbed.sh
source "$root/tests/lib/testbed.sh"
# shellcheck source=tests/lib/cargo.sh
source tests/lib/cargo.sh
# shellcheck source=tests/lib/process.sh
source tests/lib/process.sh
# shellcheck source=tests/lib/operator.sh
source tests/lib/operator.sh
workspace_build
say() { echo "operator-binary: $*"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/sigsci-operator-bin.XXXXXX")
pid=""
sim_pid=""
finish() {
  # A SIGTERM'd process's status must not become the script's (errexit applies inside the trap).
  if [[ -n "$pid" ]]; then terminate_within 5 "$pid" || true; fi
  if [[ -n "$sim_pid" ]]; then terminate_within 5 "$sim_pid" || true; fi
  rm -rf "$work"
}
trap finish EXIT

kc apply --server-side -f charts/sigsci-operator/crds/ >/dev/null
kc create namespace sigsci-system --dry-run=client -o yaml | kc apply -f - >/dev/null
lease="sigsci-operator-binary-$$"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

KUBECONFIG="$kubeconfig" POD_NAMESPACE=sigsci-system POD_NAME=binary-smoke \
  target/release/sigsci-operator --metrics-addr "127.0.0.1:$port" --lease-name "$lease" \
  >"$work/stdout" 2>"$work/log" &
pid=$!
say "started (pid $pid), waiting for it to take Lease $lease"

for _ in $(seq 100); do
  holder=$(kc -n sigsci-system get lease "$lease" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)
  [[ "$holder" == binary-smoke ]] && break
  sleep 0.2
done
[[ "$holder" == binary-smoke ]] || { say "lease not taken; log:" >&2; cat "$work/log" >&2; exit 1; }

[[ "$(curl -fsS --max-time 10 "http://127.0.0.1:$port/health")" == ok ]]
curl -fsS --max-time 10 "http://127.0.0.1:$port/metrics" | grep -q '^# EOF'
# Every log line is a JSON object.
head -n1 "$work/log" | grep -q '^{".*}$' || { say "not JSON: $(head -n1 "$work/log")" >&2; exit 1; }

# It reconciles: a connection to a running simulator becomes Ready.
namespace="operator-binary-$$"
sim_connection_ready "$work" "$namespace" ||
  { say "connection not Ready (${connection_ready:-no status}); log:" >&2; cat "$work/log" >&2; exit 1; }
say "a SigSciConnection to the simulator became Ready"

# The operator's own grace period is 10 s; it must be gone well before a kubelet's 30 s.
say "lease taken, endpoints answer; sending SIGTERM"
status=0
terminate_within 25 "$pid" || status=$?
pid=""
if ((status != 0)); then
  say "exit status $status after SIGTERM (137: still running after 25 s); log:" >&2
  cat "$work/log" >&2
  exit 1
fi
holder=$(kc -n sigsci-system get lease "$lease" -o jsonpath='{.spec.holderIdentity}')
[[ -z "$holder" ]] || { say "lease still held by $holder after SIGTERM" >&2; exit 1; }
kc -n sigsci-system delete lease "$lease" >/dev/null
kc delete namespace "$namespace" --wait=false >/dev/null
say "lease taken, /health and /metrics served, JSON logs, reconciled, lease released on SIGTERM"
