#!/usr/bin/env bash
# Agent health through the sigsci-kit CLI and a real headless Chromium (see test_ack_browser.py).
# Needs the venv and tests/health/install-deps.sh (`tests/run.sh health` runs both).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tests/lib/cargo.sh"
workspace_build
exec "$root/target/venv/bin/python" -m pytest -q -p no:cacheprovider "$root/tests/health"
