# Shared by the k8s test-bed scripts (sourced, not run): repo paths, the
# pinned tool versions (read from the wrapper go.mod files, the one place
# they are written) and the cache directory of each built tool.
# shellcheck shell=bash disable=SC2034  # the variables are used by the sourcing scripts

K8S_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd "$K8S_DIR/../.." && pwd -P)
K8S_BIN_ROOT="$REPO_ROOT/target/k8s-bin"

# module_version WRAPPER MODULE: the version WRAPPER/go.mod requires.
module_version() {
  local version
  version=$(awk -v m="$2" '$1 == m && $2 ~ /^v[0-9]/ { print $2; exit }' "$K8S_DIR/$1/go.mod")
  if [[ -z "$version" ]]; then
    echo "k8s test bed: $K8S_DIR/$1/go.mod does not require $2" >&2
    return 1
  fi
  printf '%s\n' "$version"
}

# cache_dir NAME VERSION WRAPPER: NAME-VERSION-HASH, where HASH covers the
# wrapper's files, so a version or dependency bump builds into a new directory.
cache_dir() {
  local hash
  hash=$(cd "$K8S_DIR/$3" && find . -maxdepth 1 -type f \( -name 'go.*' -o -name '*.go' \) |
    LC_ALL=C sort | xargs cat | sha256sum | cut -c1-12)
  printf '%s\n' "$K8S_BIN_ROOT/$1-$2-$hash"
}

KUBE_VERSION=$(module_version kube k8s.io/kubernetes)
ETCD_VERSION=$(module_version etcd go.etcd.io/etcd/server/v3)
HELM_VERSION=$(module_version helm helm.sh/helm/v3)

KUBE_CACHE=$(cache_dir kube "$KUBE_VERSION" kube)
ETCD_CACHE=$(cache_dir etcd "$ETCD_VERSION" etcd)
HELM_CACHE=$(cache_dir helm "$HELM_VERSION" helm)
TOOL_CACHE=$(cache_dir testbed-tool v0 testbed-tool)

KUBE_APISERVER_BIN="$KUBE_CACHE/kube-apiserver"
KUBECTL_BIN="$KUBE_CACHE/kubectl"
ETCD_BIN="$ETCD_CACHE/etcd"
HELM_BIN="$HELM_CACHE/helm"
TESTBED_TOOL_BIN="$TOOL_CACHE/testbed-tool"

# testbed_process PID DIR: PID is still an etcd or kube-apiserver that
# start.sh DIR started (their flags name DIR), not a process that later got
# the same id. DIR must be absolute.
testbed_process() {
  local cmdline
  cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
  [[ "$cmdline" == *"=$2/"* ]]
}
