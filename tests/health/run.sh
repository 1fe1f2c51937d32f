#!/usr/bin/env bash
# Agent health through the sigsci-kit CLI and a real headless Chromium (see test_ack_browser.py).
# Needs target/release/sigsci-kit (tests/run.sh builds it), the venv and tests/health/install-deps.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
if [[ ! -x "$root/target/release/sigsci-kit" ]]; then
  cargo build --release -p sigsci-kit --quiet --manifest-path "$root/Cargo.toml"
fi
exec "$root/target/venv/bin/python" -m pytest -q -p no:cacheprovider "$root/tests/health"
