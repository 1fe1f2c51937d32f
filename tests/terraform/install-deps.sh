#!/usr/bin/env bash
# The terraform CLI for the terraform suite. Machines of this kind ship one in /usr/local/bin; where
# none (or one older than 1.11, which lacks write-only arguments) is on PATH, build the pinned
# release from its Go module into target/tf-bin instead (a few minutes once, then cached).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
version=v1.11.4
bin="$root/target/tf-bin"

usable() { # usable TERRAFORM: 1.11 or newer
  local found
  found=$(TF_CLI_CONFIG_FILE=/dev/null "$1" version -json 2>/dev/null | sed -n 's/.*"terraform_version": *"\([0-9.]*\)".*/\1/p' | head -1)
  [[ -n "$found" ]] && printf '%s\n%s\n' 1.11.0 "$found" | sort -V -C
}

if [[ -x "$bin/terraform" ]] && usable "$bin/terraform"; then exit 0; fi
if command -v terraform >/dev/null && usable "$(command -v terraform)"; then exit 0; fi
echo "no terraform >= 1.11 on PATH; building $version into $bin" >&2
mkdir -p "$bin"
# Niced: the Rust build runs beside it.
GOBIN="$bin" GOFLAGS=-buildvcs=false nice -n 10 go install "github.com/hashicorp/terraform@$version"
usable "$bin/terraform"
