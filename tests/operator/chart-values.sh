#!/usr/bin/env bash
# The chart's values: values.schema.json rejects wrong types and unknown keys (helm lint --strict and
# helm template); the optional ServiceMonitor (its CRD is not on the test bed: checked as rendered),
# PodDisruptionBudget (off by default) and NetworkPolicy (ingress only by default), validated by the
# API server with a server-side dry run and matched against the Deployment's pods; the probes use
# /healthz and /readyz.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
chart="$root/charts/sigsci-operator"
# shellcheck source=tests/lib/testbed.sh
source "$root/tests/lib/testbed.sh"
python="$root/target/venv/bin/python"
say() { echo "chart-values: $*"; }
fail() { say "$*" >&2; exit 1; }
render() { "$helm" template sigsci-operator "$chart" --namespace sigsci-system "$@"; }

# --- the schema ----------------------------------------------------------------------------------
"$helm" lint --strict "$chart" >/dev/null || fail "helm lint --strict fails with the defaults"
rejects() { # rejects EXPECTED-MESSAGE HELM-ARGS...: both lint --strict and template must fail, saying why
  local expected=$1 output
  shift
  if output=$("$helm" lint --strict "$chart" "$@" 2>&1); then fail "helm lint --strict accepts $*"; fi
  [[ "$output" == *"$expected"* ]] || fail "helm lint --strict $* fails, but not with '$expected': $output"
  if output=$(render "$@" 2>&1); then fail "helm template accepts $*"; fi
  [[ "$output" == *"$expected"* ]] || fail "helm template $* fails, but not with '$expected': $output"
}
rejects "at '/replicaCount': got string, want integer" --set replicaCount=two
rejects "additional properties 'replicas' not allowed" --set replicas=2
rejects "additional properties 'resyncSecs' not allowed" --set operator.resyncSecs=60
rejects "at '/operator/leaderElection': got string, want boolean" --set-string operator.leaderElection=yes
rejects "at '/operator/logFormat'" --set operator.logFormat=xml
rejects "at '/metrics/port'" --set metrics.port=70000
rejects "at '/watchNamespace'" --set watchNamespace=Team_A
rejects "at '/metrics/serviceMonitor/interval'" --set metrics.serviceMonitor.interval=often
rejects "at '/metrics/service/enabled': value must be true" --set metrics.serviceMonitor.enabled=true --set metrics.service.enabled=false
say "values.schema.json: lint --strict and template reject wrong types, unknown keys, bad enums and ranges"

# --- defaults: probes, and no optional object ----------------------------------------------------
render | "$python" -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
kinds = sorted(d["kind"] for d in docs)
for optional in ("ServiceMonitor", "PodDisruptionBudget"):
    assert optional not in kinds, f"{optional} rendered by default: {kinds}"
[policy] = [d for d in docs if d["kind"] == "NetworkPolicy"]
assert policy["spec"]["policyTypes"] == ["Ingress"] and "egress" not in policy["spec"], policy["spec"]
assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": "metrics"}]}], policy["spec"]
container = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}, container["livenessProbe"]
assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}, container["readinessProbe"]
assert {"name": "metrics", "containerPort": 8080} in container["ports"], container["ports"]
' || fail "the default render is wrong (above)"
say "defaults: liveness /healthz, readiness /readyz on the metrics port; ingress to the metrics port only; no ServiceMonitor or PDB"

# --- ServiceMonitor (rendered only) --------------------------------------------------------------
render --set metrics.serviceMonitor.enabled=true --set metrics.serviceMonitor.interval=15s \
  --set-string metrics.serviceMonitor.labels.release=prometheus --set metrics.port=9102 | "$python" -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
assert len(monitors) == 1, monitors
monitor = monitors[0]
service = next(d for d in docs if d["kind"] == "Service")
assert monitor["apiVersion"] == "monitoring.coreos.com/v1", monitor["apiVersion"]
assert monitor["metadata"]["namespace"] == "sigsci-system", monitor["metadata"]
assert monitor["metadata"]["labels"]["release"] == "prometheus", monitor["metadata"]["labels"]
selector = monitor["spec"]["selector"]["matchLabels"]
assert selector and selector.items() <= service["metadata"]["labels"].items(), (selector, service["metadata"]["labels"])
assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["sigsci-system"]}, monitor["spec"]
[endpoint] = monitor["spec"]["endpoints"]
assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]], (endpoint, service["spec"]["ports"])
assert endpoint["path"] == "/metrics" and endpoint["interval"] == "15s" and endpoint["scrapeTimeout"] == "10s", endpoint
assert service["spec"]["ports"][0]["port"] == 9102, service["spec"]["ports"]
' || fail "the ServiceMonitor is wrong (above)"
say "ServiceMonitor: selects the metrics Service by its labels, scrapes its port /metrics at the interval set"

# --- PodDisruptionBudget and NetworkPolicy (server-side dry run) --------------------------------
kc create namespace sigsci-system --dry-run=client -o yaml | kc apply -f - >/dev/null
optional=(--set podDisruptionBudget.enabled=true --set networkPolicy.egress.restrict=true --set replicaCount=2
  --set-json 'networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]')
rendered=$(render "${optional[@]}")
printf '%s\n' "$rendered" | kc apply --server-side --force-conflicts --field-manager=sigsci-chart-check --dry-run=server -f - >/dev/null ||
  fail "the API server rejects the render with PDB and NetworkPolicy"
printf '%s\n' "$rendered" | "$python" -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]
labels = pod["metadata"]["labels"]
[pdb] = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
assert pdb["spec"]["maxUnavailable"] == 1, pdb["spec"]
assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), (pdb["spec"], labels)
[policy] = [d for d in docs if d["kind"] == "NetworkPolicy"]
spec = policy["spec"]
assert spec["podSelector"]["matchLabels"].items() <= labels.items(), (spec, labels)
assert spec["policyTypes"] == ["Ingress", "Egress"], spec
[ingress] = spec["ingress"]
assert ingress["ports"] == [{"protocol": "TCP", "port": "metrics"}], ingress
assert ingress["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}], ingress
assert "metrics" in [p["name"] for p in pod["spec"]["containers"][0]["ports"]]
ports = sorted((p["protocol"], p["port"]) for rule in spec["egress"] for p in rule["ports"])
assert ports == [("TCP", 53), ("TCP", 443), ("TCP", 6443), ("UDP", 53)], ports
' || fail "the PDB or NetworkPolicy is wrong (above)"
render --set networkPolicy.enabled=false | "$python" -c '
import sys, yaml
kinds = [d["kind"] for d in yaml.safe_load_all(sys.stdin) if d]
assert "NetworkPolicy" not in kinds, kinds
' || fail "networkPolicy.enabled=false still renders a NetworkPolicy"
say "PodDisruptionBudget and NetworkPolicy: accepted by the API server, select the operator's pods, metrics port only"
