#!/usr/bin/env bash
# Builds the k8s test-bed binaries from the Go modules pinned in the wrapper
# modules beside this script (kube-apiserver + kubectl, etcd, helm, and the
# small testbed-tool) and caches them under target/k8s-bin/, one directory
# per tool version. A cached tool is not rebuilt. Prints NAME=PATH lines.
# A cold build takes a while on 2 cores; the Go module and build caches
# (go env GOMODCACHE / GOCACHE) make later builds faster.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export CGO_ENABLED=0
# -mod=mod: the wrappers have no vendor directory; go.sum pins every module.
export GOFLAGS="-mod=mod -buildvcs=false"
# Never switch to (and download) another Go toolchain behind our back.
export GOTOOLCHAIN=local
BUILD_PARALLELISM=${SIGSCI_KIT_K8S_BUILD_JOBS:-$(nproc)}

log() { printf 'k8s build: %s\n' "$*" >&2; }

# build_into CACHE_DIR WRAPPER LDFLAGS OUTPUT PACKAGE...: builds into a
# temporary directory and renames it into place, so an interrupted build
# leaves no half-filled cache directory behind. OUTPUT names the binary of a
# single package; "" keeps go's names (one binary per package).
build_into() {
  local cache=$1 wrapper=$2 ldflags=$3 output=$4
  shift 4
  if [[ -f "$cache/.complete" ]]; then
    return 0
  fi
  local name tmp start
  name=$(basename "$cache")
  tmp=$(mktemp -d "$K8S_BIN_ROOT/.building-$name.XXXXXX")
  start=$SECONDS
  log "building $name ($*) with -p $BUILD_PARALLELISM"
  (cd "$K8S_DIR/$wrapper" && go build -p "$BUILD_PARALLELISM" -trimpath -ldflags "$ldflags" -o "$tmp/$output" "$@")
  chmod 755 "$tmp"
  touch "$tmp/.complete"
  rm -rf "$cache"
  mv "$tmp" "$cache"
  log "built $name in $((SECONDS - start))s"
  # Older builds of the same tool are dead weight now.
  local prefix=${name%%-v*}
  find "$K8S_BIN_ROOT" -mindepth 1 -maxdepth 1 -type d -name "$prefix-v*" ! -name "$name" -exec rm -rf {} +
}

mkdir -p "$K8S_BIN_ROOT"
# One build at a time: parallel callers wait, then find the cache filled.
exec 9>"$K8S_BIN_ROOT/.build.lock"
flock 9
find "$K8S_BIN_ROOT" -mindepth 1 -maxdepth 1 -name '.building-*' -exec rm -rf {} +

build_into "$TOOL_CACHE" testbed-tool "-s -w" testbed-tool .

build_into "$ETCD_CACHE" etcd "-s -w" etcd go.etcd.io/etcd/server/v3

helm_k8s_version=$(module_version helm k8s.io/client-go)
helm_k8s_minor=$(cut -d. -f2 <<<"$helm_k8s_version")
helm_pkg=helm.sh/helm/v3
# As helm's Makefile does: the version, and the Kubernetes version that
# `helm lint` / `helm template` assume without a cluster.
build_into "$HELM_CACHE" helm "-s -w \
  -X $helm_pkg/internal/version.version=$HELM_VERSION \
  -X $helm_pkg/internal/version.gitTreeState=clean \
  -X $helm_pkg/pkg/lint/rules.k8sVersionMajor=1 \
  -X $helm_pkg/pkg/lint/rules.k8sVersionMinor=$helm_k8s_minor \
  -X $helm_pkg/pkg/chartutil.k8sVersionMajor=1 \
  -X $helm_pkg/pkg/chartutil.k8sVersionMinor=$helm_k8s_minor" \
  helm "$helm_pkg/cmd/helm"

# Without these /version reports v0.0.0-master+$Format:%H$, which is not
# semver, and helm then rejects charts that set kubeVersion.
kube_minor=$(cut -d. -f2 <<<"$KUBE_VERSION")
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$kube_minor"
  kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit="
done
# kubectl shares nearly all packages with kube-apiserver, so it costs little
# extra here, and the tests never depend on a kubectl found on PATH.
build_into "$KUBE_CACHE" kube "$kube_ldflags" "" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl

printf 'KUBE_APISERVER=%s\nKUBECTL=%s\nETCD=%s\nHELM=%s\nTESTBED_TOOL=%s\n' \
  "$KUBE_APISERVER_BIN" "$KUBECTL_BIN" "$ETCD_BIN" "$HELM_BIN" "$TESTBED_TOOL_BIN"
