#!/usr/bin/env bash
# Agent health through the sigsci-kit CLI: a real headless Chromium (test_ack_browser.py) and the email
# channel against a local aiosmtpd server with STARTTLS and AUTH (test_email.py, smtp_receiver.py).
# Needs the venv and tests/health/install-deps.sh (`tests/run.sh health` runs both).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tests/lib/cargo.sh"
workspace_build
exec "$root/target/venv/bin/python" -m pytest -q --tb=short -p no:cacheprovider "$root/tests/health"
