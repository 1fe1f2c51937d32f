#!/usr/bin/env bash
# Operator checks outside `cargo test`: CRD drift, the Helm chart against the real API server,
# the built operator binary, and the `sigsci-kit config` CLI. The Rust suites (operator/tests) run under `cargo test`.
set -euo pipefail
dir=$(dirname "${BASH_SOURCE[0]}")
"$dir/crd-drift.sh"
"$dir/helm.sh"
for chart_check in values psa rbac checkov; do "$dir/chart-$chart_check.sh"; done
"$dir/operator-binary.sh"
"$dir/kills.sh"
"$dir/config-cli.sh"
