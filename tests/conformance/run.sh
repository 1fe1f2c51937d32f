#!/usr/bin/env bash
# pysigsci conformance suite: the public pysigsci CLI, unchanged, against `sigsci-kit sim`.
# Expects the venv at target/venv (tests/requirements.txt installed) and a built
# target/release/sigsci-kit; `tests/run.sh conformance` provides both.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="$root/target/venv/bin/python"
binary="$root/target/release/sigsci-kit"

if [[ ! -x "$python" ]]; then
    echo "conformance: $python not found; create the venv from tests/requirements.txt (`tests/run.sh conformance` does)" >&2
    exit 1
fi
if [[ ! -x "$binary" ]]; then
    echo "conformance: $binary not found; run: cargo build --release -p sigsci-kit" >&2
    exit 1
fi

cd "$root"
status=0
# No cache dir or bytecode: the suite must not write into the source tree.
PYTHONDONTWRITEBYTECODE=1 "$python" -m pytest -q --tb=short -p no:cacheprovider tests/conformance "$@" || status=$?
if [[ $status -eq 5 ]]; then
    echo "conformance: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
