#!/usr/bin/env bash
# Feed export suite: the CLI killed mid-hour and rerun (to a directory and to S3), verify/status, bad
# input, exit codes; the OCSF Parquet output read back with pyarrow and validated (test_ocsf.py). The Lambda is packaged and run under cargo lambda's emulator by tests/deploy/run.sh.
# Needs moto (SIGSCI_KIT_TEST_MOTO_URL) and target/venv: `tests/run.sh feed` provides both, or
# `tests/services.sh up DIR moto` and `source DIR/env`.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
venv="$root/target/venv"
: "${SIGSCI_KIT_TEST_MOTO_URL:?run tests/run.sh feed, or tests/services.sh up DIR moto and source DIR/env}"
export PATH="$venv/bin:$PATH"

source tests/lib/cargo.sh
workspace_build
"$venv/bin/python" -m pytest -q --tb=short tests/feed/test_feed_cli.py tests/feed/test_ocsf.py
