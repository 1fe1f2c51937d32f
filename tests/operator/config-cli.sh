#!/usr/bin/env bash
# `sigsci-kit config plan|apply` as CI would run it, against a simulator started by the CLI:
# plan exits 2 with the pending changes, apply converges, plan then exits 0; removals of what
# apply recorded happen only with --prune, under each deletionPolicy; two manifests claiming one
# remote object are refused; examples/gitops is accepted (and, with the test bed's API server,
# passes its server-side validation).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
source tests/lib/cargo.sh
source tests/lib/process.sh
workspace_build
kit="$root/target/release/sigsci-kit"
work=$(mktemp -d "${TMPDIR:-/tmp}/sigsci-config-cli.XXXXXX")
sim_pid=""
gitops_pid=""
finish() {
  # The simulators die of our SIGTERM; their status must not become the script's.
  if [[ -n "$sim_pid" ]]; then terminate_within 10 "$sim_pid" || true; fi
  if [[ -n "$gitops_pid" ]]; then terminate_within 10 "$gitops_pid" || true; fi
  rm -rf "$work"
}
trap finish EXIT
expect() { # expect FILE TEXT: FILE contains TEXT, or fail showing FILE
  grep -qF -- "$2" "$1" || { echo "config-cli: $(basename "$1") lacks: $2" >&2; cat "$1" >&2; exit 1; }
}
refute() { # refute FILE TEXT: FILE does not contain TEXT
  if grep -qF -- "$2" "$1"; then echo "config-cli: $(basename "$1") has: $2" >&2; cat "$1" >&2; exit 1; fi
}
exits() { # exits CODE OUT -- COMMAND...: COMMAND exits CODE, its stdout in OUT and stderr in OUT.err
  local want=$1 out=$2 status
  shift 3
  set +e
  "$@" >"$out" 2>"$out.err"
  status=$?
  set -e
  [[ $status -eq $want ]] || { echo "config-cli: $* exited $status, want $want" >&2; cat "$out" "$out.err" >&2; exit 1; }
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

# --prune: apply records what it manages; a manifest removed is planned as a removal, left alone
# by apply, and carried out by apply --prune under its deletionPolicy. An integration made by
# hand (never recorded) survives every prune.
api() { # api PATH: GET PATH of the simulator's corp API
  curl -sf -H "x-api-user: sim@example.com" -H "x-api-token: sim-token" "$url/api/v0/corps/testcorp/$1"
}
alert_field() { # alert_field SITE TAG FIELD: FIELD of the site's alert TAG, or "absent"
  api "sites/$1/alerts" | python3 -c '
import json, sys
alerts = [a for a in json.load(sys.stdin)["data"] if a["tagName"] == sys.argv[1]]
print(json.dumps(alerts[0][sys.argv[2]]) if alerts else "absent")' "$2" "$3"
}
ids() { # ids ID...: the ids sorted, on one line (as integration_ids prints them)
  python3 -c 'import sys; print(" ".join(sorted(sys.argv[1:])))' "$@"
}
integration_ids() { # integration_ids SITE: the site's integration ids, sorted, one line
  api "sites/$1/integrations" | python3 -c '
import json, sys
print(" ".join(sorted(i["id"] for i in json.load(sys.stdin)["data"])))'
}
mkdir -p "$work/prune"
sed "s|SIM_URL|$url|" tests/fixtures/manifests/connection.yaml >"$work/prune/connection.yaml"
cat >"$work/prune/objects.yaml" <<'YAML'
apiVersion: sigsci-kit.io/v1alpha1
kind: AgentAlert
metadata: {name: rps}
spec: {connectionRef: {name: prod}, site: site-3, metric: averageRPS, operator: lessThan, threshold: 7, interval: 10}
---
apiVersion: sigsci-kit.io/v1alpha1
kind: AgentAlert
metadata: {name: agents}
spec: {connectionRef: {name: prod}, site: site-3, metric: onlineAgentCount, operator: equalTo, threshold: 0, interval: 5, deletionPolicy: Delete}
---
apiVersion: sigsci-kit.io/v1alpha1
kind: Integration
metadata: {name: pager}
spec: {connectionRef: {name: prod}, site: site-3, type: generic, url: "https://hooks.example.com/pager", events: [agentAlert]}
---
apiVersion: sigsci-kit.io/v1alpha1
kind: Integration
metadata: {name: keep}
spec: {connectionRef: {name: prod}, site: site-3, type: generic, url: "https://hooks.example.com/keep", events: [flag], deletionPolicy: Orphan}
YAML
state="$work/prune/sigsci-kit.state.json"
"$kit" config apply -f "$work/prune" >"$work/prune-apply.out"
expect "$work/prune-apply.out" "State: 4 managed object(s) recorded in $state."
[[ "$(jq -r '[.objects[] | "\(.kind) \(.name) \(.deletionPolicy)"] | join(", ")' "$state")" == \
  "AgentAlert agents Delete, AgentAlert rps Disable, Integration keep Orphan, Integration pager Delete" ]] ||
  { echo "config-cli: unexpected state file:" >&2; cat "$state" >&2; exit 1; }
pager_id=$(jq -r '.objects[] | select(.name == "pager") | .remoteId' "$state")
keep_id=$(jq -r '.objects[] | select(.name == "keep") | .remoteId' "$state")
# The API answers a create without the id: the hand-made one is the id apply did not record.
curl -sf -X POST -H "x-api-user: sim@example.com" -H "x-api-token: sim-token" -H 'content-type: application/json' \
  -d '{"type":"generic","url":"https://hooks.example.com/by-hand","events":["flag"]}' \
  "$url/api/v0/corps/testcorp/sites/site-3/integrations" >/dev/null
by_hand=$(integration_ids site-3 | tr ' ' '\n' | grep -vxF -e "$pager_id" -e "$keep_id")
[[ "$(alert_field site-3 requests_total enabled)" == true ]] || { echo "config-cli: rps alert not enabled" >&2; exit 1; }

# The manifests of rps (Disable), pager (Delete) and keep (Orphan) go; agents stays.
python3 - "$work/prune/objects.yaml" <<'PY'
import sys
path = sys.argv[1]
docs = open(path).read().split("---\n")
open(path, "w").write("---\n".join(d for d in docs if "name: agents}" in d))
PY
exits 2 "$work/prune-plan.out" -- "$kit" config plan -f "$work/prune"
expect "$work/prune-plan.out" '  # AgentAlert default/rps is no longer declared (deletionPolicy Disable): applied by `config apply --prune`'
expect "$work/prune-plan.out" '      ~ enabled: true -> false'
expect "$work/prune-plan.out" "  # Integration default/pager: site site-3 generic integration (id $pager_id) will be deleted"
expect "$work/prune-plan.out" "Note: Integration default/keep is no longer declared; site site-3 generic integration (id $keep_id) stays as it is (deletionPolicy Orphan), and apply forgets it."
expect "$work/prune-plan.out" 'Plan: 0 to create, 1 to change, 1 to delete.'
refute "$work/prune-plan.out" "$by_hand"

exits 0 "$work/prune-held.out" -- "$kit" config apply -f "$work/prune"
expect "$work/prune-held.out" 'Apply complete: 0 created, 0 changed, 0 deleted.'
expect "$work/prune-held.out" 'Not applied: 2 removal(s) of objects no manifest declares any more; `config apply --prune` applies them.'
expect "$work/prune-held.out" "State: 3 managed object(s) recorded in $state."
[[ "$(alert_field site-3 requests_total enabled)" == true ]] || { echo "config-cli: apply without --prune disabled rps" >&2; exit 1; }
[[ "$(integration_ids site-3)" == "$(ids "$pager_id" "$keep_id" "$by_hand")" ]] ||
  { echo "config-cli: apply without --prune changed the integrations: $(integration_ids site-3), want $(ids "$pager_id" "$keep_id" "$by_hand")" >&2; exit 1; }
exits 2 "$work/prune-replan.out" -- "$kit" config plan -f "$work/prune"
expect "$work/prune-replan.out" 'Plan: 0 to create, 1 to change, 1 to delete.'

exits 0 "$work/prune-apply2.out" -- "$kit" config apply -f "$work/prune" --prune
expect "$work/prune-apply2.out" "updated site site-3 alert requests_total"
expect "$work/prune-apply2.out" "deleted site site-3 generic integration"
expect "$work/prune-apply2.out" 'Apply complete: 0 created, 1 changed, 1 deleted.'
expect "$work/prune-apply2.out" "State: 1 managed object(s) recorded in $state."
[[ "$(alert_field site-3 requests_total enabled)" == false ]] || { echo "config-cli: --prune did not disable rps" >&2; exit 1; }
[[ "$(integration_ids site-3)" == "$(ids "$keep_id" "$by_hand")" ]] ||
  { echo "config-cli: --prune left other integrations: $(integration_ids site-3)" >&2; exit 1; }
exits 0 "$work/prune-converged.out" -- "$kit" config plan -f "$work/prune"
expect "$work/prune-converged.out" 'No changes.'

# Every object manifest gone (the connection stays): the recorded agents alert is deleted (Delete).
rm "$work/prune/objects.yaml"
exits 2 "$work/prune-last.out" -- "$kit" config plan -f "$work/prune"
expect "$work/prune-last.out" '  - site site-3 alert agent_scoreboards {'
exits 0 "$work/prune-last-apply.out" -- "$kit" config apply -f "$work/prune" --prune
expect "$work/prune-last-apply.out" 'Apply complete: 0 created, 0 changed, 1 deleted.'
[[ "$(alert_field site-3 agent_scoreboards id)" == absent ]] || { echo "config-cli: --prune did not delete agents" >&2; exit 1; }
[[ "$(integration_ids site-3)" == "$(ids "$keep_id" "$by_hand")" ]] ||
  { echo "config-cli: the last prune touched integrations: $(integration_ids site-3)" >&2; exit 1; }
[[ "$(jq '.objects | length' "$state")" == 0 ]] || { echo "config-cli: state not emptied" >&2; cat "$state" >&2; exit 1; }
echo "config-cli: apply records 4 -> plan shows 2 removals -> apply keeps them -> --prune disables rps, deletes pager, leaves keep and the hand-made one"

# sites: one AgentAlert on every site (`all`: the simulator's three), each site's part planned,
# applied, recorded and pruned under its own address `name[site]`.
writes() { # writes: the simulator's count of API calls other than GET
  curl -sf "$url/__sim/log" | python3 -c '
import json, sys
print(sum(n for call, n in json.load(sys.stdin)["calls"].items() if not call.startswith("GET ")))'
}
mkdir -p "$work/sites"
sed "s|SIM_URL|$url|" tests/fixtures/manifests/connection.yaml >"$work/sites/connection.yaml"
sites_alert() { # sites_alert SITES: the alert manifest, with spec.sites SITES
  cat >"$work/sites/alert.yaml" <<YAML
apiVersion: sigsci-kit.io/v1alpha1
kind: AgentAlert
metadata: {name: nobody-home}
spec: {connectionRef: {name: prod}, sites: $1, metric: onlineAgentCount, operator: lessThan, threshold: 2, interval: 10, deletionPolicy: Delete}
YAML
}
sites_alert all
exits 2 "$work/sites-plan.out" -- "$kit" config plan -f "$work/sites"
for site in site-1 site-2 site-3; do
  expect "$work/sites-plan.out" "  # AgentAlert default/nobody-home[$site]: site $site alert agent_scoreboards"
done
exits 2 "$work/sites-plan.json" -- "$kit" config plan -f "$work/sites" -o json
[[ "$(jq -r '[.plans[].changes[] | "\(.manifest) \(.object)"] | join(", ")' "$work/sites-plan.json")" == \
  "AgentAlert default/nobody-home[site-1] site site-1 alert agent_scoreboards, AgentAlert default/nobody-home[site-2] site site-2 alert agent_scoreboards, AgentAlert default/nobody-home[site-3] site site-3 alert agent_scoreboards" ]] ||
  { echo "config-cli: the json plan does not name each site:" >&2; cat "$work/sites-plan.json" >&2; exit 1; }
exits 0 "$work/sites-apply.out" -- "$kit" config apply -f "$work/sites"
expect "$work/sites-apply.out" "State: 3 managed object(s) recorded in $work/sites/sigsci-kit.state.json."
for site in site-1 site-2 site-3; do
  [[ "$(alert_field "$site" agent_scoreboards threshold) $(alert_field "$site" agent_scoreboards interval)" == "2 10" ]] ||
    { echo "config-cli: the all-sites alert is not set on $site" >&2; api "sites/$site/alerts" >&2; exit 1; }
done
[[ "$(jq -r '[.objects[] | "\(.name) \(.site) \(.perSite)"] | join(", ")' "$work/sites/sigsci-kit.state.json")" == \
  "nobody-home site-1 true, nobody-home site-2 true, nobody-home site-3 true" ]] ||
  { echo "config-cli: unexpected state file:" >&2; cat "$work/sites/sigsci-kit.state.json" >&2; exit 1; }
before=$(writes)
exits 0 "$work/sites-again.out" -- "$kit" config apply -f "$work/sites"
expect "$work/sites-again.out" 'Apply complete: 0 created, 0 changed, 0 deleted.'
[[ "$(writes)" == "$before" ]] || { echo "config-cli: the second all-sites apply wrote to the API" >&2; exit 1; }

# site-2 dropped from the list: its part is pruned under the deletionPolicy (Delete), the others stay.
sites_alert '[site-1, site-3]'
exits 2 "$work/sites-drop.out" -- "$kit" config plan -f "$work/sites"
expect "$work/sites-drop.out" '  # AgentAlert default/nobody-home[site-2] is no longer declared (deletionPolicy Delete): applied by `config apply --prune`'
expect "$work/sites-drop.out" 'Plan: 0 to create, 0 to change, 1 to delete.'
exits 0 "$work/sites-prune.out" -- "$kit" config apply -f "$work/sites" --prune
expect "$work/sites-prune.out" 'Apply complete: 0 created, 0 changed, 1 deleted.'
expect "$work/sites-prune.out" "State: 2 managed object(s) recorded in $work/sites/sigsci-kit.state.json."
[[ "$(alert_field site-2 agent_scoreboards id)" == absent ]] || { echo "config-cli: --prune did not delete site-2's alert" >&2; exit 1; }
for site in site-1 site-3; do
  [[ "$(alert_field "$site" agent_scoreboards threshold)" == 2 ]] || { echo "config-cli: --prune touched $site" >&2; exit 1; }
done
exits 0 "$work/sites-converged.out" -- "$kit" config plan -f "$work/sites"
expect "$work/sites-converged.out" 'No changes.'

# `sites` -> `site` and back: the remote alert stays under its new address (never pruned as the old
# one); only the site no longer declared is removed.
single_site() {
  cat >"$work/sites/alert.yaml" <<'YAML'
apiVersion: sigsci-kit.io/v1alpha1
kind: AgentAlert
metadata: {name: nobody-home}
spec: {connectionRef: {name: prod}, site: site-1, metric: onlineAgentCount, operator: lessThan, threshold: 2, interval: 10, deletionPolicy: Delete}
YAML
}
single_site
exits 2 "$work/to-single.out" -- "$kit" config plan -f "$work/sites"
expect "$work/to-single.out" '  # AgentAlert default/nobody-home[site-3] is no longer declared (deletionPolicy Delete)'
refute "$work/to-single.out" 'nobody-home[site-1] is no longer declared'
expect "$work/to-single.out" 'Plan: 0 to create, 0 to change, 1 to delete.'
exits 0 "$work/to-single-apply.out" -- "$kit" config apply -f "$work/sites" --prune
expect "$work/to-single-apply.out" 'Apply complete: 0 created, 0 changed, 1 deleted.'
[[ "$(jq -r '[.objects[] | "\(.name) \(.site) \(.perSite // false)"] | join(", ")' "$work/sites/sigsci-kit.state.json")" == "nobody-home site-1 false" ]] ||
  { echo "config-cli: site -> sites: unexpected state file:" >&2; cat "$work/sites/sigsci-kit.state.json" >&2; exit 1; }
[[ "$(alert_field site-1 agent_scoreboards threshold) $(alert_field site-3 agent_scoreboards id)" == "2 absent" ]] ||
  { echo "config-cli: sites -> site did not keep site-1 and delete site-3" >&2; exit 1; }
sites_alert '[site-1, site-3]'
exits 2 "$work/to-sites.out" -- "$kit" config plan -f "$work/sites"
refute "$work/to-sites.out" 'is no longer declared'
expect "$work/to-sites.out" 'Plan: 1 to create, 0 to change, 0 to delete.'
exits 0 "$work/to-sites-apply.out" -- "$kit" config apply -f "$work/sites" --prune
expect "$work/to-sites-apply.out" 'Apply complete: 1 created, 0 changed, 0 deleted.'
expect "$work/to-sites-apply.out" "State: 2 managed object(s) recorded in $work/sites/sigsci-kit.state.json."

# managementPolicy: ObserveOnly: what differs is shown apart and leaves plan's exit code 0; apply
# writes nothing and stops recording the object, so no later --prune can remove it.
cat >"$work/sites/alert.yaml" <<'YAML'
apiVersion: sigsci-kit.io/v1alpha1
kind: AgentAlert
metadata: {name: nobody-home}
spec: {connectionRef: {name: prod}, sites: [site-1, site-3], metric: onlineAgentCount, operator: lessThan, threshold: 4, interval: 10, deletionPolicy: Delete, managementPolicy: ObserveOnly}
YAML
before=$(writes)
exits 0 "$work/observe-plan.out" -- "$kit" config plan -f "$work/sites"
expect "$work/observe-plan.out" 'No changes to apply.'
! grep -q 'The remote configuration matches' "$work/observe-plan.out" ||
  { echo "config-cli: the plan says the remote matches although ObserveOnly objects differ" >&2; exit 1; }
expect "$work/observe-plan.out" 'ObserveOnly objects that differ from their manifests (never applied):'
for site in site-1 site-3; do
  expect "$work/observe-plan.out" "  # AgentAlert default/nobody-home[$site]: site $site alert agent_scoreboards"
done
expect "$work/observe-plan.out" '~ threshold: 2 -> 4'
exits 0 "$work/observe-plan.json" -- "$kit" config plan -f "$work/sites" -o json
[[ "$(jq -c '[.plans[].changes[] | [.manifest, .observe_only]]' "$work/observe-plan.json")" == \
  '[["AgentAlert default/nobody-home[site-1]",true],["AgentAlert default/nobody-home[site-3]",true]]' ]] ||
  { echo "config-cli: the json plan does not mark the ObserveOnly differences:" >&2; cat "$work/observe-plan.json" >&2; exit 1; }
[[ "$(jq -c '[.summary.create, .summary.update, .summary.delete]' "$work/observe-plan.json")" == '[0,0,0]' ]] ||
  { echo "config-cli: ObserveOnly differences counted as changes" >&2; exit 1; }
exits 0 "$work/observe-apply.out" -- "$kit" config apply -f "$work/sites" --prune
expect "$work/observe-apply.out" 'Apply complete: 0 created, 0 changed, 0 deleted.'
expect "$work/observe-apply.out" "State: 0 managed object(s) recorded in $work/sites/sigsci-kit.state.json."
[[ "$(writes)" == "$before" ]] || { echo "config-cli: apply wrote to the API for an ObserveOnly object" >&2; exit 1; }
for site in site-1 site-3; do
  [[ "$(alert_field "$site" agent_scoreboards threshold)" == 2 ]] || { echo "config-cli: ObserveOnly changed $site" >&2; exit 1; }
done

# An all-sites object and a single-site object of the same metric claim one alert on site-1.
cat >"$work/sites/single.yaml" <<'YAML'
apiVersion: sigsci-kit.io/v1alpha1
kind: AgentAlert
metadata: {name: site-1-agents}
spec: {connectionRef: {name: prod}, site: site-1, metric: onlineAgentCount, operator: lessThan, threshold: 1, interval: 5}
YAML
sites_alert all
exits 1 "$work/sites-conflict.out" -- "$kit" config plan -f "$work/sites"
expect "$work/sites-conflict.out.err" "AgentAlert default/site-1-agents (in $work/sites/single.yaml): claims the site site-1 alert agent_scoreboards (onlineAgentCount) of corp testcorp at $url, which AgentAlert default/nobody-home[site-1] (in $work/sites/alert.yaml) already declares"
echo "config-cli: sites: all -> one alert per simulator site, recorded per site; again: no write; a site dropped -> --prune deletes it there only; sites <-> site keeps the alert; ObserveOnly -> shown apart, never written or recorded; all-sites vs single-site conflict"

# No fighting: two connections to the same corp (the URL spelled with a trailing slash) and two
# manifests claiming one alert and one integration: exit 1 naming both files, nothing called.
mkdir -p "$work/conflict"
{
  sed "s|SIM_URL|$url|" tests/fixtures/manifests/connection.yaml
  cat <<YAML
---
apiVersion: sigsci-kit.io/v1alpha1
kind: SigSciConnection
metadata: {name: prod-again}
spec: {corp: testcorp, apiURL: "$url/", credentialsSecretRef: {name: other-credentials}}
YAML
} >"$work/conflict/connections.yaml"
cat >"$work/conflict/a.yaml" <<'YAML'
apiVersion: sigsci-kit.io/v1alpha1
kind: AgentAlert
metadata: {name: first}
spec: {connectionRef: {name: prod}, site: site-1, metric: averageRPS, operator: lessThan, threshold: 3, interval: 5}
---
apiVersion: sigsci-kit.io/v1alpha1
kind: Integration
metadata: {name: hook}
spec: {connectionRef: {name: prod}, site: site-1, type: slack, urlFrom: {secretKeyRef: {name: oncall-hook, key: url}}, events: [flag]}
YAML
cat >"$work/conflict/b.yaml" <<'YAML'
apiVersion: sigsci-kit.io/v1alpha1
kind: AgentAlert
metadata: {name: second}
spec: {connectionRef: {name: prod-again}, site: site-1, metric: averageRPS, operator: lessThan, threshold: 9, interval: 5}
---
apiVersion: sigsci-kit.io/v1alpha1
kind: Integration
metadata: {name: hook-copy}
spec: {connectionRef: {name: prod-again}, site: site-1, type: slack, urlFrom: {secretKeyRef: {name: oncall-hook, key: url}}, events: [agentAlert]}
YAML
curl -sf "$url/__sim/log" >"$work/log-before.json"
for action in plan apply; do
  exits 1 "$work/conflict-$action.out" -- "$kit" config "$action" -f "$work/conflict"
  [[ "$(cat "$work/conflict-$action.out.err")" == "error: conflicting manifests, nothing planned or applied: AgentAlert default/second (in $work/conflict/b.yaml): claims the site site-1 alert requests_total (averageRPS) of corp testcorp at $url/, which AgentAlert default/first (in $work/conflict/a.yaml) already declares: one remote object can have one manifest; Integration default/hook-copy (in $work/conflict/b.yaml): claims the site site-1 slack integration with the same URL of corp testcorp at $url/, which Integration default/hook (in $work/conflict/a.yaml) already declares: one remote object can have one manifest" ]] ||
    { echo "config-cli: conflict $action: unexpected error:" >&2; cat "$work/conflict-$action.out.err" >&2; exit 1; }
  refute "$work/conflict-$action.out.err" oncall-secret
done
curl -sf "$url/__sim/log" >"$work/log-after.json"
cmp -s "$work/log-before.json" "$work/log-after.json" ||
  { echo "config-cli: a conflicting apply called the API" >&2; diff "$work/log-before.json" "$work/log-after.json" >&2; exit 1; }
echo "config-cli: two manifests claiming one alert and one integration across connections: exit 1, both named, no API call"

# examples/gitops: what a GitOps repository copies. Planned against a simulator serving its corp
# (its site names mapped to the simulator's, its apiURL to the simulator's): accepted, every
# object planned, secrets from the environment and never printed.
mkdir -p "$work/gitops-sim" "$work/gitops"
main_pid=$sim_pid
start_simulator "$kit" "$work/gitops-sim" --corp my-corp
gitops_pid=$sim_pid gitops_url=$sim_url sim_pid=$main_pid
for file in examples/gitops/*; do
  sed -e "s|apiURL: https://dashboard.signalsciences.net|apiURL: $gitops_url|" \
    -e 's|site: www$|site: site-1|' -e 's|site: shop$|site: site-2|' "$file" >"$work/gitops/$(basename "$file")"
done
[[ "$(diff examples/gitops "$work/gitops" | grep -c '^>')" == 5 ]] ||
  { echo "config-cli: the gitops copy differs in more than apiURL and site names:" >&2; diff examples/gitops "$work/gitops" >&2; exit 1; }
exits 2 "$work/gitops-plan.out" -- env SIGSCI_KIT_SECRET_SLACK_WEBHOOK_URL=https://hooks.slack.com/services/T/B/gitops-secret \
  "$kit" config plan -f "$work/gitops"
for expected in \
  "SigSciConnection sigsci/prod (corp my-corp at $gitops_url):" \
  '  # AgentAlert sigsci/no-agents-online[site-1]: site site-1 alert agent_scoreboards' \
  '  # AgentAlert sigsci/no-agents-online[site-2]: site site-2 alert agent_scoreboards' \
  '  # AgentAlert sigsci/no-agents-online[site-3]: site site-3 alert agent_scoreboards' \
  '  # AgentAlert sigsci/www-low-traffic: site site-1 alert requests_total' \
  '  # Integration sigsci/www-oncall-slack: site site-1 slack integration will be created' \
  '  # Integration sigsci/shop-oncall-slack: site site-2 slack integration will be created' \
  '  # Integration sigsci/corp-security-mail: corp mailingList integration will be created' \
  '  # SigSciList sigsci/www-scanners: site site-1 list "scanners" will be created' \
  '      + entries:     ["198.51.100.0/24","203.0.113.7"]'; do
  expect "$work/gitops-plan.out" "$expected"
done
refute "$work/gitops-plan.out" gitops-secret
echo "config-cli: examples/gitops planned: no-agents-online on the 3 sites (sites: all), 1 more alert, 3 integrations, 1 list (exit 2, changes pending)"

# The same files, verbatim, through the real API server's validation (CRD schemas and CEL rules).
if [[ -n "${SIGSCI_KIT_TEST_KUBECTL-}" && -n "${SIGSCI_KIT_TEST_KUBECONFIG-}" ]]; then
  kc() { "$SIGSCI_KIT_TEST_KUBECTL" --kubeconfig "$SIGSCI_KIT_TEST_KUBECONFIG" "$@"; }
  kc apply --server-side --force-conflicts --field-manager=sigsci-config-cli -f charts/sigsci-operator/crds >/dev/null
  kc wait --for condition=established --timeout=60s -f charts/sigsci-operator/crds >/dev/null
  kc apply -f examples/gitops/namespace.yaml >/dev/null
  kc apply --server-side --dry-run=server --field-manager=sigsci-config-cli -f examples/gitops >"$work/gitops-dry-run.out"
  for object in sigsciconnection.sigsci-kit.io/prod agentalert.sigsci-kit.io/no-agents-online \
    agentalert.sigsci-kit.io/www-low-traffic \
    integration.sigsci-kit.io/www-oncall-slack integration.sigsci-kit.io/shop-oncall-slack \
    integration.sigsci-kit.io/corp-security-mail sigscilist.sigsci-kit.io/www-scanners; do
    expect "$work/gitops-dry-run.out" "$object serverside-applied (server dry run)"
  done
  echo "config-cli: examples/gitops passes the API server's validation (server-side dry run)"
else
  echo "config-cli: SIGSCI_KIT_TEST_KUBECTL/SIGSCI_KIT_TEST_KUBECONFIG not set: the server-side dry run of examples/gitops is skipped"
fi
