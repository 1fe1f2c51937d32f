#!/usr/bin/env bash
# The operator killed mid-reconcile: 200 objects (AgentAlerts on 20 sites, Integrations), the
# built binary SIGKILLed 20 times at random moments and started again; it must converge (every
# object Ready) and leave no duplicate remote object (one alert per site and tag, one integration
# per site and URL, read from the simulator).
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
say() { echo "operator-kills: $*"; }

sites=20
hooks_per_site=8
work=$(mktemp -d "${TMPDIR:-/tmp}/sigsci-operator-kills.XXXXXX")
pid=""
sim_pid=""
namespace="operator-kills-$$"
finish() {
  if [[ -n "$pid" ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
  if [[ -n "$sim_pid" ]]; then terminate_within 5 "$sim_pid" || true; fi
  rm -rf "$work"
}
trap finish EXIT

start_operator() {
  KUBECONFIG="$kubeconfig" target/release/sigsci-operator --watch-namespace "$namespace" \
    --leader-election false --metrics-addr 127.0.0.1:0 --resync-seconds 5 \
    >/dev/null 2>>"$work/operator.log" &
  pid=$!
}

kc apply --server-side -f charts/sigsci-operator/crds/ >/dev/null
start_simulator target/release/sigsci-kit "$work" --sites "$sites"
# shellcheck disable=SC2154  # sim_url: set by start_simulator
api="$sim_url/api/v0/corps/testcorp"
kc create namespace "$namespace" >/dev/null
kc -n "$namespace" create secret generic sim-credentials \
  --from-literal=email=sim@example.com --from-literal=token=sim-token >/dev/null
{
  cat <<YAML
apiVersion: sigsci-kit.io/v1alpha1
kind: SigSciConnection
metadata: {name: sim}
spec: {corp: testcorp, apiURL: "$sim_url", credentialsSecretRef: {name: sim-credentials}}
YAML
  for site in $(seq "$sites"); do
    for metric in averageRPS onlineAgentCount; do
      cat <<YAML
---
apiVersion: sigsci-kit.io/v1alpha1
kind: AgentAlert
metadata: {name: site-$site-${metric,,}}
spec: {connectionRef: {name: sim}, site: site-$site, metric: $metric, operator: lessThan, threshold: 3, interval: 10, deletionPolicy: Orphan}
YAML
    done
    for hook in $(seq "$hooks_per_site"); do
      cat <<YAML
---
apiVersion: sigsci-kit.io/v1alpha1
kind: Integration
metadata: {name: site-$site-hook-$hook}
spec: {connectionRef: {name: sim}, site: site-$site, type: slack, url: "https://hooks.slack.test/kills/$site/$hook", events: [flag], deletionPolicy: Orphan}
YAML
    done
  done
} >"$work/objects.yaml"
objects=$((sites * (2 + hooks_per_site)))

# Killed while the objects arrive and while they reconcile: 20 runs of 0.3–2.3 s each.
start_operator
kc -n "$namespace" apply -f "$work/objects.yaml" >/dev/null
for _ in $(seq 20); do
  sleep "$(python3 -c 'import random; print(round(random.uniform(0.3, 2.3), 2))')"
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  start_operator
done
say "killed 20 times; waiting for all $objects objects to be Ready"

ready_count() {
  kc -n "$namespace" get agentalerts,integrations \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
    grep -c '^True$' || true
}
ready=0
for _ in $(seq 150); do
  ready=$(ready_count)
  ((ready == objects)) && break
  sleep 1
done
((ready == objects)) || { say "only $ready of $objects Ready; log tail:" >&2; tail -n 20 "$work/operator.log" >&2; exit 1; }
say "all $objects Ready after the kills"

# No duplicates in the simulator, and every declared object exists once.
creds=(-H 'x-api-user: sim@example.com' -H 'x-api-token: sim-token')
for site in $(seq "$sites"); do
  alerts=$(curl -fsS "${creds[@]}" "$api/sites/site-$site/alerts" |
    python3 -c 'import json, sys, collections; c = collections.Counter(a["tagName"] for a in json.load(sys.stdin)["data"]); print(max(c.values()), len(c))')
  [[ "$alerts" == "1 "* ]] || { say "site-$site: duplicate alerts (most per tag, tags: $alerts)" >&2; exit 1; }
  hooks=$(curl -fsS "${creds[@]}" "$api/sites/site-$site/integrations" |
    python3 -c 'import json, sys, collections; c = collections.Counter(i["url"] for i in json.load(sys.stdin)["data"]); print(max(c.values(), default=0), len(c))')
  [[ "$hooks" == "1 $hooks_per_site" ]] ||
    { say "site-$site: integrations (most per URL, URLs) are $hooks, want 1 $hooks_per_site" >&2; exit 1; }
done
say "no duplicate remote objects on $sites sites"

# Orphan policies: deleting only releases the finalizers.
kc -n "$namespace" delete agentalerts,integrations --all --wait=true --timeout=60s >/dev/null
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
pid=""
kc delete namespace "$namespace" --wait=false >/dev/null
say "converged after 20 SIGKILLs with $objects objects, no duplicates"
