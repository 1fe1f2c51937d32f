#!/usr/bin/env bash
# CLI conventions shared by every subcommand: target and credentials from flags or the environment
# (flags win), and bad input answered by one clear line and a non-zero exit; then test_output.py
# (-o documents and tables, colour, time flags, config -f forms, completions, man page).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
kit="$root/target/release/sigsci-kit"
[[ -x "$kit" ]] || { echo "build first: cargo build --release -p sigsci-kit" >&2; exit 1; }
work=$(mktemp -d)
sim_pid=
source "$root/tests/lib/process.sh"
cleanup() { [[ -n "$sim_pid" ]] && { terminate_within 10 "$sim_pid" || true; }; rm -rf "$work"; }
trap cleanup EXIT

passed=0
failed=0
check() { # check NAME EXPECTED_EXIT STDERR_PATTERN COMMAND...
  local name=$1 want=$2 pattern=$3; shift 3
  local got=0
  "$@" >"$work/out" 2>"$work/err" || got=$?
  local lines
  lines=$(grep -c . "$work/err" || true)
  if [[ "$got" == "$want" ]] && grep -Eq -- "$pattern" "$work/err" "$work/out" && { [[ "$want" == 0 ]] || ((lines <= 3)); }; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); echo "FAIL $name: exit $got (want $want), stderr:"; sed 's/^/     /' "$work/err"
  fi
}

start_simulator "$kit" "$work" --sites 2
url=$sim_url

# Environment only, with the names pysigsci users already have.
check "env credentials list sites" 0 '^site-1' \
  env SIGSCI_API_URL="$url" SIGSCI_CORP=testcorp SIGSCI_EMAIL=sim@example.com SIGSCI_API_TOKEN=sim-token "$kit" sites
check "SIGSCI_TOKEN accepted" 0 '^site-2' \
  env SIGSCI_API_URL="$url" SIGSCI_CORP=testcorp SIGSCI_EMAIL=sim@example.com SIGSCI_TOKEN=sim-token "$kit" sites
# A flag beats the environment: the bad env token would fail.
check "flags win over env" 0 'site-1-agent-0' \
  env SIGSCI_API_URL="$url" SIGSCI_CORP=testcorp SIGSCI_EMAIL=sim@example.com SIGSCI_API_TOKEN=wrong \
  "$kit" agents --site site-1 --token sim-token
check "password login" 0 '^site-1' \
  env -u SIGSCI_API_TOKEN "$kit" sites --api-url "$url" --corp testcorp --email sim@example.com --password sim-password
# Bad input: one line that names the problem, exit code != 0.
check "wrong token" 1 '401|nauthori' \
  "$kit" sites --api-url "$url" --corp testcorp --email sim@example.com --token wrong
check "unknown site" 1 'site-9|not found|404' \
  "$kit" agents --site site-9 --api-url "$url" --corp testcorp --email sim@example.com --token sim-token
check "missing corp" 1 'corp' \
  env -u SIGSCI_CORP "$kit" sites --api-url "$url" --email sim@example.com --token sim-token
check "missing credentials" 1 'credentials' \
  env -u SIGSCI_API_TOKEN -u SIGSCI_TOKEN -u SIGSCI_PASSWORD "$kit" sites --api-url "$url" --corp testcorp --email sim@example.com
check "unreachable API" 1 '127.0.0.1:9|connect' \
  "$kit" sites --api-url http://127.0.0.1:9 --corp testcorp --email sim@example.com --token sim-token
check "malformed URL" 1 'not a URL|api-url' \
  "$kit" sites --api-url 'http//nope' --corp testcorp --email sim@example.com --token sim-token
check "malformed flag" 2 'unexpected argument|invalid value' \
  "$kit" sim --rps fast
check "simulator on a used port" 1 'cannot listen' \
  "$kit" sim --listen "${url#http://}"

echo "cli: $passed passed, $failed failed"
# Output formats, colour, time flags, config -f forms, completions and the man page.
pytest_status=0
"$root/target/venv/bin/python" -m pytest -q --tb=short "$root/tests/cli/test_output.py" || pytest_status=$?
((failed == 0 && pytest_status == 0))
