#!/usr/bin/env bash
# The one test command: installs what the tests need, starts the real services, runs every suite.
# Fresh machine: ./tests/run.sh   (Python packages go to target/venv, Go-built binaries to target/k8s-bin)
# Some suites only: ./tests/run.sh SUITE...  (plus the build and the services they need), with SUITE one of
#   cargo (cargo test), k8s-smoke, and the directories with a run.sh: cli conformance deploy feed health
#   operator terraform
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

all_suites=(cargo k8s-smoke)
for suite in tests/*/run.sh; do
  all_suites+=("$(basename "$(dirname "$suite")")")
done
selected=("$@")
((${#selected[@]})) || selected=("${all_suites[@]}")
for suite in "${selected[@]}"; do
  if [[ " ${all_suites[*]} " != *" $suite "* ]]; then
    echo "unknown suite $suite; the suites are: ${all_suites[*]}" >&2
    exit 2
  fi
done
wants() { [[ " ${selected[*]} " == *" $1 "* ]]; }
# What the suites need besides the build: moto for S3 and Secrets Manager, the Kubernetes test bed.
services=()
{ wants cargo || wants feed || wants deploy; } && services+=(moto)
{ wants cargo || wants k8s-smoke || wants operator || wants deploy; } && services+=(k8s)
needs() { [[ " ${services[*]-} " == *" $1 "* ]]; }
# shellcheck source=tests/lib/cargo.sh
source tests/lib/cargo.sh
state=$(mktemp -d "${TMPDIR:-/tmp}/sigsci-kit-tests.XXXXXX")
failed=()
passed=()

step() { # step NAME COMMAND... : runs one check, records the outcome, keeps going
  local name=$1; shift
  echo
  echo "=== $name"
  local started=$SECONDS status=0
  "$@" || status=$?
  if ((status == 0)); then
    passed+=("$name")
    echo "=== $name: ok ($((SECONDS - started)) s)"
  else
    failed+=("$name")
    local why=""
    ((status == 124)) && why=", timed out"
    echo "=== $name: FAILED (exit $status$why, $((SECONDS - started)) s)"
  fi
}

# A hung suite must cost one suite, not the whole CI budget; the slowest takes about 8 minutes.
suite_limit=1200
limited() { timeout --kill-after=30 "$suite_limit" "$@"; }

must() { # like step, but later steps cannot run without it
  step "$@"
  if [[ " ${failed[*]-} " == *" $1 "* ]]; then summary; fi
}

cleanup() {
  [[ -n "${k8s_build_pid-}" ]] && kill -- "-$k8s_build_pid" 2>/dev/null
  tests/services.sh down "$state" >/dev/null 2>&1
  rm -rf "$state"
}
trap cleanup EXIT

summary() {
  echo
  echo "=== summary"
  for name in "${passed[@]-}"; do [[ -n "$name" ]] && echo "  ok      $name"; done
  for name in "${failed[@]-}"; do [[ -n "$name" ]] && echo "  FAILED  $name"; done
  echo "${#passed[@]} passed, ${#failed[@]} failed"
  if ((${#failed[@]})); then exit 1; fi
  exit 0
}

# --- install what the suites need -------------------------------------------------------------
must "python venv (target/venv)" tests/lib/venv.sh
for deps in tests/*/install-deps.sh; do
  wants "$(basename "$(dirname "$deps")")" && must "system packages ($deps)" "$deps"
done
# The Go build of the Kubernetes test bed (a quarter of an hour cold) runs beside the Rust build:
# each leaves a core idle often enough (serial crates, links) for the other to use it.
k8s_build_pid=""
if needs k8s; then
  # Own process group, so an aborted run stops the go processes too.
  setsid tests/k8s/build.sh >"$state/k8s-build.log" 2>&1 &
  k8s_build_pid=$!
fi
k8s_build_wait() {
  local status=0
  wait "$k8s_build_pid" || status=$?
  k8s_build_pid=""
  cat "$state/k8s-build.log"
  return "$status"
}

# --- static checks and the build --------------------------------------------------------------
step "cargo fmt --check" cargo fmt --all --check
must "cargo build with clippy lints (-D warnings)" workspace_build
# The cross builds (arm64 Lambdas, the static operator) take minutes of their own: a step of their own,
# beside the Go build, rather than inside the deploy suite's time limit.
package() {
  scripts/package.sh --arch "${SIGSCI_KIT_DEPLOY_ARCH:-arm64}" && export SIGSCI_KIT_TEST_PACKAGED=1
}
wants deploy && must "lambda zips and the operator binary (scripts/package.sh)" package
[[ -n "$k8s_build_pid" ]] && must "kube-apiserver, etcd, helm (target/k8s-bin)" k8s_build_wait

# --- services ---------------------------------------------------------------------------------
if ((${#services[@]})); then
  must "services (${services[*]})" tests/services.sh up "$state" "${services[@]}"
  # shellcheck disable=SC1091
  source "$state/env"
fi

# --- suites -----------------------------------------------------------------------------------
wants cargo && step "cargo test" limited cargo test --release --workspace --no-fail-fast --quiet
wants k8s-smoke && step "kubernetes test bed smoke" limited tests/k8s/smoke.sh
for suite in tests/*/run.sh; do
  wants "$(basename "$(dirname "$suite")")" && step "suite ${suite%/run.sh}" limited "$suite"
done
summary
