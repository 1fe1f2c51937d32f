#!/usr/bin/env bash
# `sigsci-kit config plan|apply` as CI would run it, against a simulator started by the CLI:
# plan exits 2 with the pending changes, apply converges, plan then exits 0.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
source tests/lib/cargo.sh
source tests/lib/process.sh
workspace_build
kit="$root/target/release/sigsci-kit"
work=$(mktemp -d "${TMPDIR:-/tmp}/sigsci-config-cli.XXXXXX")
sim_pid=""
finish() {
  # The simulator dies of our SIGTERM; its status must not become the script's.
  if [[ -n "$sim_pid" ]]; then terminate_within 10 "$sim_pid" || true; fi
  rm -rf "$work"
}
trap finish EXIT
expect() { # expect FILE TEXT: FILE contains TEXT, or fail showing FILE
  grep -qF -- "$2" "$1" || { echo "config-cli: $(basename "$1") lacks: $2" >&2; cat "$1" >&2; exit 1; }
}

start_simulator "$kit" "$work"
url=$sim_url

mkdir -p "$work/manifests"
# The connection and alert tests/cli/test_output.py plans too, and an integration to create.
{
  sed "s|SIM_URL|$url|" tests/fixtures/manifests/connection.yaml
  echo ---
  cat tests/fixtures/manifests/no-agents-alert.yaml
  cat <<YAML
---
apiVersion: sigsci-kit.io/v1alpha1
kind: Integration
metadata: {name: oncall}
spec:
  connectionRef: {name: prod}
  site: site-2
  type: generic
  urlFrom: {secretKeyRef: {name: oncall-hook, key: url}}
  events: [agentAlert]
YAML
} >"$work/manifests/alerts.yaml"

export SIGSCI_EMAIL=sim@example.com SIGSCI_API_TOKEN=sim-token
export SIGSCI_KIT_SECRET_ONCALL_HOOK_URL=https://hooks.example.com/oncall-secret

set +e
"$kit" config plan -f "$work/manifests" >"$work/plan.out"
status=$?
set -e
cat "$work/plan.out"
[[ $status -eq 2 ]] || { echo "config-cli: plan exited $status, want 2 (changes pending)" >&2; exit 1; }
expect "$work/plan.out" '~ enabled: false -> true'
expect "$work/plan.out" 'Plan: 1 to create, 1 to change, 0 to delete.'
if grep -q oncall-secret "$work/plan.out"; then
  echo "config-cli: the plan printed a secret" >&2
  exit 1
fi

"$kit" config apply -f "$work/manifests" >"$work/apply.out"
expect "$work/apply.out" 'Apply complete: 1 created, 1 changed, 0 deleted.'

"$kit" config plan -f "$work/manifests" >"$work/replan.out"
expect "$work/replan.out" 'No changes.'
echo "config-cli: plan exit 2 -> apply -> plan exit 0"

# Failures exit 1 with one line naming the field, each cause printed once.
expect_error() { # expect_error NAME DIR MESSAGE [ENV...]: `config plan -f DIR` fails printing exactly MESSAGE
  local name=$1 dir=$2 message=$3
  shift 3
  set +e
  env "$@" "$kit" config plan -f "$dir" >"$work/$name.out" 2>"$work/$name.err"
  status=$?
  set -e
  [[ $status -eq 1 ]] || { echo "config-cli: $name: plan exited $status, want 1" >&2; cat "$work/$name.err" >&2; exit 1; }
  [[ "$(cat "$work/$name.err")" == "$message" ]] ||
    { echo "config-cli: $name: want stderr: $message" >&2; echo "got:" >&2; cat "$work/$name.err" >&2; exit 1; }
}
expect_error wrong-token "$work/manifests" \
  "error: cannot read the remote state of SigSciConnection default/prod: 401 unauthorized: Unauthorized" \
  SIGSCI_API_TOKEN=wrong-token

bad_manifest() { # bad_manifest NAME YAML: the manifests plus NAME.yaml, in $work/NAME
  mkdir -p "$work/$1"
  cp "$work/manifests/alerts.yaml" "$work/$1/"
  printf 'apiVersion: sigsci-kit.io/v1alpha1\n%s\n' "$2" >"$work/$1/$1.yaml"
}
bad_manifest typo 'kind: AgentAlert
metadata: {name: typo}
spec: {connectionRef: {name: prod}, site: site-1, metric: averageRPS, operator: lessThan, treshold: 5, threshold: 5, interval: 5}'
expect_error typo "$work/typo" \
  "error: cannot load manifests from $work/typo: $work/typo/typo.yaml: document 1: unknown field \"spec.treshold\""

bad_manifest interval 'kind: AgentAlert
metadata: {name: slow}
spec: {connectionRef: {name: prod}, site: site-1, metric: averageRPS, operator: lessThan, threshold: 5, interval: 7}'
expect_error interval "$work/interval" \
  "error: invalid manifests: AgentAlert default/slow spec.interval: must be one of 5, 10 or 60 (minutes), got 7"

bad_manifest event 'kind: Integration
metadata: {name: pager}
spec: {connectionRef: {name: prod}, site: site-1, type: slack, url: "https://hooks.example.com/x", events: [agentAlerts]}'
expect_error event "$work/event" \
  "error: invalid manifests: Integration default/pager spec.events: \"agentAlerts\" is not a site integration event (one of flag, agentAlert, loggingModeChanged, listCreated, webhookEvents)"
echo "config-cli: wrong token, unknown field, bad interval and unknown event each fail with one clear line"

# Active response: `lists block` writes a SigSciList manifest that `config plan` accepts; apply
# creates the list, `--apply` adds at once, and an entry past its expiry is removed by the next apply.
mkdir -p "$work/lists"
sed "s|SIM_URL|$url|" tests/fixtures/manifests/connection.yaml >"$work/lists/connection.yaml"
block="$work/lists/block.yaml"
"$kit" lists block --site site-1 --ip 198.51.100.0/24 --for 24h --comment "incident 42: scanner" \
  --connection prod -f "$block" >"$work/block.out"
expect "$work/block.out" "SigSciList default/site-1-blocked-ips in site site-1 (198.51.100.0/24 until "
expect "$block" "comment: 'incident 42: scanner'"
set +e
"$kit" config plan -f "$work/lists" >"$work/lists-plan.out"
status=$?
set -e
[[ $status -eq 2 ]] || { echo "config-cli: lists plan exited $status, want 2" >&2; cat "$work/lists-plan.out" >&2; exit 1; }
expect "$work/lists-plan.out" '+ site site-1 list "blocked-ips" {'
expect "$work/lists-plan.out" '+ entries:     ["198.51.100.0/24"]'
"$kit" config apply -f "$work/lists" >"$work/lists-apply.out"
expect "$work/lists-apply.out" 'created site site-1 list "blocked-ips" (id site.blocked-ips)'

"$kit" lists block --site site-1 --ip 203.0.113.7 --until 2h --connection prod -f "$block" --apply \
  --api-url "$url" --corp testcorp >"$work/block-apply.out"
expect "$work/block-apply.out" "blocked 203.0.113.7 in list site.blocked-ips of the site site-1"
"$kit" config plan -f "$work/lists" >"$work/lists-replan.out"
expect "$work/lists-replan.out" 'No changes.'

# The 24-hour entry's time comes (edited to the past): the next apply removes exactly it.
sed -i "0,/expires: .*/s//expires: 2020-01-01T00:00:00Z/" "$block"
"$kit" config apply -f "$work/lists" >"$work/lists-expire.out"
expect "$work/lists-expire.out" '~ entries removed: ["198.51.100.0/24"] -> (none)'
curl -sf -H "x-api-user: sim@example.com" -H "x-api-token: sim-token" \
  "$url/api/v0/corps/testcorp/sites/site-1/lists/site.blocked-ips" >"$work/list.json"
expect "$work/list.json" '"entries":["203.0.113.7"]'

set +e
"$kit" lists block --site site-1 --ip 10.0.0.0/33 --for 1h -f "$block" >"$work/bad-ip.out" 2>"$work/bad-ip.err"
status=$?
set -e
[[ $status -eq 1 ]] || { echo "config-cli: lists block with a bad range exited $status, want 1" >&2; exit 1; }
expect "$work/bad-ip.err" 'error: --ip "10.0.0.0/33" must be an IPv4/IPv6 address or CIDR range'
echo "config-cli: lists block -> plan -> apply -> --apply -> expiry removes the entry"
