#!/usr/bin/env bash
# Fails when the committed CRDs in charts/sigsci-operator/crds/ differ from the ones generated
# from the Rust types (operator/src/crd). Fix: cargo run --release -p sigsci-operator --bin crdgen
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
fresh=$(mktemp -d "${TMPDIR:-/tmp}/sigsci-crds.XXXXXX")
trap 'rm -rf "$fresh"' EXIT
source tests/lib/cargo.sh
workspace_build
target/release/crdgen "$fresh" >/dev/null
if ! diff -ru charts/sigsci-operator/crds "$fresh"; then
  echo "crd-drift: charts/sigsci-operator/crds/ is stale; regenerate with:" >&2
  echo "  cargo run --release -p sigsci-operator --bin crdgen" >&2
  exit 1
fi
echo "crd-drift: the committed CRDs match the Rust types"
