#!/usr/bin/env bash
# Feed export suite: the CLI killed mid-hour and rerun, verify/status, bad input, the Lambda
# bootstrap under `cargo lambda watch` + `invoke`, and one `cargo lambda build --release`.
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
"$venv/bin/python" -m pytest -q tests/feed/test_feed_cli.py

# One cargo-lambda build: arm64 when the aarch64 target is installed, else x86_64 (zig from the venv).
if rustup target list --installed 2>/dev/null | grep -q '^aarch64-unknown-linux-gnu$'; then arch=--arm64; else arch=--x86-64; fi
(cd functions/feed-export && cargo lambda build --release "$arch" --bin feed-export)
bootstrap=$(find target/lambda/feed-export -name bootstrap -type f | head -1)
[[ -x "$bootstrap" ]] || { echo "cargo lambda build produced no bootstrap" >&2; exit 1; }
echo "built $bootstrap ($arch, $(du -h "$bootstrap" | cut -f1))"
