#!/usr/bin/env bash
# Deploy suite: what `terraform apply` and `helm install` ship.
# - scripts/package.sh: the three Lambda zips for SIGSCI_KIT_DEPLOY_ARCH (default arm64, as deployed) and the
#   static musl operator binary;
# - test_lambdas.py: each zip holds one `bootstrap` ELF for that architecture within 8 MB, and each runs
#   under cargo-lambda's Runtime API emulator with its trigger's real event against the simulator and moto;
# - operator-image.sh: the operator image built with buildah, unpacked, and run as uid 65532 on a
#   read-only root against the Kubernetes test bed.
# Needs moto and the k8s test bed: `tests/run.sh deploy` provides both (and runs install-deps.sh), or
# `tests/services.sh up DIR moto k8s` and `source DIR/env`.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
: "${SIGSCI_KIT_TEST_MOTO_URL:?run tests/run.sh deploy, or tests/services.sh up DIR moto k8s and source DIR/env}"
: "${SIGSCI_KIT_TEST_KUBECONFIG:?run tests/run.sh deploy, or tests/services.sh up DIR moto k8s and source DIR/env}"
export SIGSCI_KIT_DEPLOY_ARCH="${SIGSCI_KIT_DEPLOY_ARCH:-arm64}"
# shellcheck source=tests/lib/cargo.sh
source tests/lib/cargo.sh
# The simulator and the CLI come from the test build.
workspace_build
# tests/run.sh packages in a step of its own before the suites.
[[ -n "${SIGSCI_KIT_TEST_PACKAGED-}" ]] || scripts/package.sh --arch "$SIGSCI_KIT_DEPLOY_ARCH"
"$root/target/venv/bin/python" -m pytest -q --tb=short -p no:cacheprovider -rA "$root/tests/deploy/test_lambdas.py"
tests/deploy/operator-image.sh
