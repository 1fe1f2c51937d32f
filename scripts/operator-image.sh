#!/usr/bin/env bash
# Builds the operator image from operator/Dockerfile with buildah (no daemon) and exports it as an OCI
# layout, named as the chart's defaults name it (charts/sigsci-operator: image.repository, and the tag, or
# the chart's appVersion when the tag is empty).
#
# Usage: scripts/operator-image.sh [--oci DIR] [--skip-binary]
#   --oci DIR      where the OCI layout goes (default target/operator-image.oci); the image is DIR:TAG
#   --skip-binary  use target/operator-image as scripts/package.sh --operator-only left it
# Needs buildah (tests/deploy/install-deps.sh). Prints the image reference and its size. Push it with
#   skopeo copy oci:target/operator-image.oci:TAG docker://REGISTRY/sigsci-operator:TAG
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

oci="$root/target/operator-image.oci"
build_binary=1
while (($#)); do
  case "$1" in
    --oci) oci=${2:?--oci needs a directory}; shift 2 ;;
    --oci=*) oci=${1#--oci=}; shift ;;
    --skip-binary) build_binary=0; shift ;;
    *) echo "operator-image.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v buildah >/dev/null || { echo "operator-image.sh: buildah is missing (tests/deploy/install-deps.sh installs it)" >&2; exit 1; }

# The chart's defaults, read the way the chart reads them.
values=charts/sigsci-operator/values.yaml
repository=$(sed -n '/^image:/,/^[^ ]/s/^  repository: *\([^ #]*\).*/\1/p' "$values")
tag=$(sed -n '/^image:/,/^[^ ]/s/^  tag: *"\{0,1\}\([^" #]*\)"\{0,1\}.*/\1/p' "$values")
[[ -n "$tag" ]] || tag=$(sed -n 's/^appVersion: *"\{0,1\}\([^" ]*\)"\{0,1\}.*/\1/p' charts/sigsci-operator/Chart.yaml)
[[ -n "$repository" && -n "$tag" ]] || { echo "operator-image.sh: cannot read image.repository/tag from $values" >&2; exit 1; }
image="$repository:$tag"

((build_binary)) && scripts/package.sh --operator-only
context="$root/target/operator-image"
for file in sigsci-operator ca-certificates.crt; do
  [[ -s "$context/$file" ]] || { echo "operator-image.sh: $context/$file is missing: run scripts/package.sh --operator-only" >&2; exit 1; }
done

# A private, throwaway store: vfs needs no kernel overlay support, and nothing is left in the host's
# container storage. FROM scratch with no RUN step needs no isolation beyond chroot.
store=$(mktemp -d "${TMPDIR:-/tmp}/sigsci-operator-buildah.XXXXXX")
trap 'rm -rf "$store"' EXIT
bah() { buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs "$@"; }
# --timestamp 0: the same binary gives the same image digest.
bah bud --quiet --isolation chroot --format oci --timestamp 0 -f operator/Dockerfile -t "$image" "$context" >/dev/null
rm -rf "$oci"
mkdir -p "$(dirname "$oci")"
bah push --quiet "$image" "oci:$oci:$tag" >/dev/null

# Size as a registry stores it (compressed layers) and unpacked.
manifest="$oci/blobs/sha256/$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"].split(":")[1])' "$oci/index.json")"
read -r compressed < <(python3 -c 'import json, sys; print(sum(layer["size"] for layer in json.load(open(sys.argv[1]))["layers"]))' "$manifest")
unpacked=$(($(stat -c %s "$context/sigsci-operator") + $(stat -c %s "$context/ca-certificates.crt")))
echo "operator-image.sh: $image -> oci:${oci#"$root"/}:$tag"
echo "operator-image.sh: size $compressed bytes compressed ($(awk -v b="$compressed" 'BEGIN { printf "%.1f", b / 1048576 }') MB), $unpacked bytes unpacked"
