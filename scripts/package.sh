#!/usr/bin/env bash
# Release artifacts for deployment:
# - the three Lambda functions for provided.al2023, as target/lambda/<function>/bootstrap.zip
#   (feed-export, agent-health, ack-url; the Terraform module uploads these paths);
# - the operator as a static musl binary, target/operator-image/sigsci-operator, with a CA bundle beside it:
#   the build context of operator/Dockerfile (scripts/operator-image.sh builds the image).
#
# Usage: scripts/package.sh [--arch arm64|x86_64|all] [--lambdas-only | --operator-only]
#          [--operator-target TRIPLE]
#   --arch             Lambda architecture (default arm64, as the Terraform module deploys). With `all`, each
#                      architecture also lands in target/lambda/<arch>/<function>/bootstrap.zip and the
#                      canonical paths hold arm64.
#   --operator-target  musl triple of the operator binary (default x86_64-unknown-linux-musl).
# Needs target/venv (tests/lib/venv.sh: cargo-lambda and its zig). A missing Rust target is installed with
# rustup; if that fails the script fails: it never falls back to the host architecture.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

arch=arm64
operator_target=x86_64-unknown-linux-musl
build_lambdas=1
build_operator=1
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while (($#)); do
  case "$1" in
    --arch) arch=${2-}; shift 2 || usage ;;
    --arch=*) arch=${1#--arch=}; shift ;;
    --operator-target) operator_target=${2-}; shift 2 || usage ;;
    --operator-target=*) operator_target=${1#--operator-target=}; shift ;;
    --lambdas-only) build_operator=0; shift ;;
    --operator-only) build_lambdas=0; shift ;;
    -h | --help) usage ;;
    *) echo "package.sh: unknown argument $1" >&2; usage ;;
  esac
done
case "$arch" in
  arm64 | aarch64) arches=(arm64) ;;
  x86_64 | x86-64 | amd64) arches=(x86_64) ;;
  all) arches=(arm64 x86_64) ;;
  *) echo "package.sh: --arch must be arm64, x86_64 or all, not $arch" >&2; exit 2 ;;
esac
[[ "$operator_target" == *-linux-musl* ]] || { echo "package.sh: the operator target must be a musl triple (a static binary), not $operator_target" >&2; exit 2; }

# The functions: binary name = directory under functions/ = package "<name>-function".
functions=(feed-export agent-health ack-url)
# Lambda's hard limit is 50 MB zipped; ours is a cold-start budget.
max_zip_bytes=$((8 * 1024 * 1024))

venv="$root/target/venv"
[[ -x "$venv/bin/cargo-lambda" ]] || "$root/tests/lib/venv.sh"
# cargo-lambda finds its zig (the ziglang package) through the venv's python.
export PATH="$venv/bin:$PATH"
# The test build's cargo settings (clippy-driver for workspace crates, as every build here).
# shellcheck source=tests/lib/cargo.sh
source "$root/tests/lib/cargo.sh"

triple_of() { # Lambda architecture -> Rust target (glibc: provided.al2023 has glibc 2.34)
  case "$1" in
    arm64) echo aarch64-unknown-linux-gnu ;;
    x86_64) echo x86_64-unknown-linux-gnu ;;
  esac
}

ensure_target() { # rustup target add when missing; fails loudly rather than building for the host
  local triple=$1 installed
  installed=$(rustup target list --installed)
  if ! grep -qx "$triple" <<<"$installed"; then
    echo "package.sh: installing the Rust target $triple"
    rustup target add "$triple" || { echo "package.sh: cannot install the Rust target $triple" >&2; exit 1; }
  fi
}

package_arch() { # package_arch ARCH: the three functions in one cargo invocation (one dependency build)
  local arch=$1 triple lambda_dir packages=() fn
  triple=$(triple_of "$arch")
  ensure_target "$triple"
  lambda_dir="$root/target/lambda"
  ((${#arches[@]} > 1)) && lambda_dir="$root/target/lambda/$arch"
  for fn in "${functions[@]}"; do
    packages+=(-p "$fn-function")
    # A failed build must not leave an old zip looking fresh, nor an unpacked bootstrap of another build.
    rm -f "$lambda_dir/$fn/bootstrap.zip" "$lambda_dir/$fn/bootstrap"
  done
  echo "package.sh: building ${functions[*]} for $arch ($triple)"
  local started=$SECONDS
  cargo lambda build --release --target "$triple" --output-format zip --lambda-dir "$lambda_dir" \
    "${packages[@]}" --bins
  echo "package.sh: $arch build took $((SECONDS - started)) s"
  local size failed=0
  for fn in "${functions[@]}"; do
    local zip="$lambda_dir/$fn/bootstrap.zip"
    [[ -f "$zip" ]] || { echo "package.sh: cargo lambda produced no $zip" >&2; exit 1; }
    size=$(stat -c %s "$zip")
    printf 'package.sh: %-70s %8d bytes (%s MB)\n' "${zip#"$root"/}" "$size" "$(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1048576 }')"
    if ((size > max_zip_bytes)); then
      echo "package.sh: $zip is over the 8 MB target" >&2
      failed=1
    fi
  done
  ((failed == 0)) || exit 1
  if ((${#arches[@]} > 1)) && [[ "$arch" == arm64 ]]; then
    for fn in "${functions[@]}"; do
      mkdir -p "$root/target/lambda/$fn"
      cp "$lambda_dir/$fn/bootstrap.zip" "$root/target/lambda/$fn/bootstrap.zip"
    done
  fi
}

package_operator() { # the static operator binary, with zig as the musl C compiler (aws-lc-sys is C)
  ensure_target "$operator_target"
  local out="$root/target/operator-image"
  rm -f "$out/sigsci-operator" "$out/ca-certificates.crt"
  echo "package.sh: building sigsci-operator for $operator_target"
  local started=$SECONDS
  # cargo lambda drives the zig cross build (zig is the musl C compiler and linker); it moves the binary
  # to <lambda-dir>/sigsci-operator/bootstrap, from where it goes into the image's build context.
  local build_dir="$root/target/operator-build"
  rm -rf "$build_dir"
  cargo lambda build --release --target "$operator_target" --output-format binary \
    --lambda-dir "$build_dir" -p sigsci-operator --bin sigsci-operator
  echo "package.sh: operator build took $((SECONDS - started)) s"
  local binary="$build_dir/sigsci-operator/bootstrap"
  [[ -x "$binary" ]] || { echo "package.sh: cargo lambda left no $binary" >&2; exit 1; }
  # Static: no program interpreter, so it runs on an image with nothing else in it.
  if readelf -lW "$binary" | grep -q 'program interpreter' || readelf -dW "$binary" | grep -q '(NEEDED)'; then
    echo "package.sh: $binary is dynamically linked" >&2
    exit 1
  fi
  mkdir -p "$out"
  cp "$binary" "$out/sigsci-operator"
  # The image's CA bundle is the build host's (Debian's ca-certificates): the Dockerfile has no RUN step.
  local bundle=/etc/ssl/certs/ca-certificates.crt
  [[ -s "$bundle" ]] || { echo "package.sh: $bundle is missing (Debian package ca-certificates)" >&2; exit 1; }
  cp "$bundle" "$out/ca-certificates.crt"
  echo "package.sh: target/operator-image/sigsci-operator $(stat -c %s "$out/sigsci-operator") bytes, and the CA bundle"
}

if ((build_lambdas)); then
  for a in "${arches[@]}"; do package_arch "$a"; done
fi
if ((build_operator)); then
  package_operator
fi
