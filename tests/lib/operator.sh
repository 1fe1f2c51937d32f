# shellcheck shell=bash
# Sourced by the checks that run a real sigsci-operator against the k8s test bed (tests/operator/
# operator-binary.sh, tests/deploy/operator-image.sh): one definition of "it reconciles".
# Needs process.sh sourced and the caller's kc (kubectl against the test bed).

# sim_connection_ready WORK NAMESPACE: starts a simulator (start_simulator: sets sim_pid, which the
# caller stops, and sim_url), creates NAMESPACE with a credentials Secret and a SigSciConnection
# `sim` to the simulator, and waits up to 30 s for the operator to set it Ready. Fails if it does
# not; connection_ready holds the last Ready status seen, for the caller's message.
sim_connection_ready() {
  local work=$1 namespace=$2
  connection_ready=""
  # Called as `sim_connection_ready ... || fail`, where errexit does not apply: each step checks itself.
  start_simulator "$(dirname "${BASH_SOURCE[0]}")/../../target/release/sigsci-kit" "$work" || return 1
  kc create namespace "$namespace" >/dev/null || return 1
  kc -n "$namespace" create secret generic sim-credentials \
    --from-literal=email=sim@example.com --from-literal=token=sim-token >/dev/null || return 1
  # shellcheck disable=SC2154  # sim_url: set by start_simulator
  kc -n "$namespace" apply -f - >/dev/null <<YAML || return 1
apiVersion: sigsci-kit.io/v1alpha1
kind: SigSciConnection
metadata: {name: sim}
spec:
  corp: testcorp
  apiURL: $sim_url
  credentialsSecretRef: {name: sim-credentials}
YAML
  for _ in $(seq 150); do
    connection_ready=$(kc -n "$namespace" get sigsciconnection sim \
      -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
    [[ "$connection_ready" == True ]] && return 0
    sleep 0.2
  done
  return 1
}
