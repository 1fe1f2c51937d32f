#!/usr/bin/env bash
# Creates (or refreshes) a venv from a requirements file.
#   tests/lib/venv.sh [VENV [REQUIREMENTS]]   default: target/venv from tests/requirements.txt
# Paths are absolute or relative to the repository root. Skips pip when the requirements have not
# changed since the last install into this very path (a venv's scripts name their interpreter by
# absolute path, so a moved or copied checkout gets a fresh one).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
from_root() { if [[ $1 == /* ]]; then echo "$1"; else echo "$root/$1"; fi; }
venv=$(from_root "${1:-target/venv}")
requirements=$(from_root "${2:-tests/requirements.txt}")
stamp="$venv/.requirements.sha256"
wanted="$(sha256sum "$requirements" | cut -d' ' -f1) $venv"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
  exit 0
fi
mkdir -p "$(dirname "$venv")"
python3 -m venv --clear "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
echo "$wanted" > "$stamp"
