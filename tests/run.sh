#!/usr/bin/env bash
# The one test command: installs what the tests need, starts the real services, runs every suite.
# Fresh machine: ./tests/run.sh   (Python packages go to target/venv, Go-built binaries to target/k8s-bin)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
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
  [[ -x tests/k8s/stop.sh && -d "$state/k8s" ]] && tests/k8s/stop.sh "$state/k8s" >/dev/null 2>&1
  tests/lib/moto.sh stop "$state" >/dev/null 2>&1
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
  [[ -x "$deps" ]] && must "system packages ($deps)" "$deps"
done
# The Go build of the Kubernetes test bed (a quarter of an hour cold) runs beside the Rust build:
# each leaves a core idle often enough (serial crates, links) for the other to use it.
k8s_build_pid=""
if [[ -x tests/k8s/build.sh ]]; then
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
[[ -n "$k8s_build_pid" ]] && must "kube-apiserver, etcd, helm (target/k8s-bin)" k8s_build_wait

# --- services ---------------------------------------------------------------------------------
must "moto server" tests/lib/moto.sh start "$state"
# shellcheck disable=SC1091
source "$state/moto.env"
if [[ -x tests/k8s/start.sh ]]; then
  must "kube-apiserver + etcd" tests/k8s/start.sh "$state/k8s"
  # shellcheck disable=SC1091
  source "$state/k8s/env"
fi

# --- suites -----------------------------------------------------------------------------------
step "cargo test" limited cargo test --release --workspace --no-fail-fast --quiet
[[ -x tests/k8s/smoke.sh ]] && step "kubernetes test bed smoke" limited tests/k8s/smoke.sh
for suite in tests/*/run.sh; do
  step "suite ${suite%/run.sh}" limited "$suite"
done
summary
