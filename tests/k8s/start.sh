#!/usr/bin/env bash
# Usage: tests/k8s/start.sh DIR
# Starts etcd and kube-apiserver on 127.0.0.1 (free ports picked now) in the
# background, with fresh certificates, RBAC authorization and service-account
# token signing, and waits until /readyz answers. Writes into DIR:
#   kubeconfig       admin (client cert in system:masters)
#   user.kubeconfig  sigsci-kit-test-user, a client cert with no RBAC bindings
#   env              exports SIGSCI_KIT_TEST_KUBECONFIG, KUBECONFIG,
#                    SIGSCI_KIT_TEST_KUBE_PIDS and the cached kubectl/helm paths
#   etcd.log, kube-apiserver.log, pids
# Builds the binaries first if they are not cached. Stop with stop.sh DIR.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
mkdir -p "$1"
dir=$(cd "$1" && pwd -P)

log() { printf 'k8s start: %s\n' "$*" >&2; }

if [[ -f "$dir/pids" ]]; then
  read -r -a old_pids <"$dir/pids"
  for pid in "${old_pids[@]}"; do
    if testbed_process "$pid" "$dir"; then
      log "a test bed from $dir is still running (pid $pid): run tests/k8s/stop.sh $dir first"
      exit 1
    fi
  done
fi

"$K8S_DIR/build.sh" >/dev/null

start=$SECONDS
rm -rf "$dir/certs" "$dir/etcd-data" "$dir/pids" "$dir/env"
"$TESTBED_TOOL_BIN" certs "$dir/certs"
certs="$dir/certs"

etcd_pid=""
apiserver_pid=""

stop_started() {
  local pid
  for pid in $apiserver_pid $etcd_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  apiserver_pid=""
  etcd_pid=""
}
trap stop_started ERR
trap 'stop_started; exit 130' INT TERM

# lost_port_race LOG: the port picked a moment ago was taken by someone else.
lost_port_race() {
  grep -q 'address already in use' "$1"
}

started=false
for attempt in 1 2 3; do
  ports=$("$TESTBED_TOOL_BIN" free-ports 3)
  read -r -d '' etcd_port peer_port api_port <<<"$ports" || true
  etcd_url="http://127.0.0.1:$etcd_port"

  # Test data is thrown away, so etcd skips fsync (much faster on slow disks).
  "$ETCD_BIN" \
    --name=sigsci-kit-test \
    --data-dir="$dir/etcd-data" \
    --listen-client-urls="$etcd_url" \
    --advertise-client-urls="$etcd_url" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="sigsci-kit-test=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync=true \
    --log-level=warn \
    </dev/null >"$dir/etcd.log" 2>&1 &
  etcd_pid=$!
  if ! "$TESTBED_TOOL_BIN" wait -url "$etcd_url/health" -pid "$etcd_pid" -timeout 30s; then
    stop_started
    if lost_port_race "$dir/etcd.log"; then
      log "etcd port taken meanwhile, retrying (attempt $attempt)"
      rm -rf "$dir/etcd-data"
      continue
    fi
    log "etcd did not start; last lines of $dir/etcd.log:"
    tail -n 20 "$dir/etcd.log" >&2
    exit 1
  fi

  # The flags envtest uses (controller-runtime), plus explicit serving cert
  # files. No controller-manager runs, so the ServiceAccount admission plugin
  # (which waits for default service accounts) is off, and the endpoint
  # reconciler is off because a loopback address is not a valid endpoint.
  "$KUBE_APISERVER_BIN" \
    --etcd-servers="$etcd_url" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$api_port" \
    --cert-dir="$certs" \
    --tls-cert-file="$certs/apiserver.crt" \
    --tls-private-key-file="$certs/apiserver.key" \
    --client-ca-file="$certs/client-ca.crt" \
    --authorization-mode=RBAC \
    --service-account-issuer="https://127.0.0.1:$api_port/" \
    --service-account-key-file="$certs/sa-signer.pub" \
    --service-account-signing-key-file="$certs/sa-signer.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --allow-privileged=true \
    --disable-admission-plugins=ServiceAccount \
    --endpoint-reconciler-type=none \
    </dev/null >"$dir/kube-apiserver.log" 2>&1 &
  apiserver_pid=$!
  if ! "$TESTBED_TOOL_BIN" wait -url "https://127.0.0.1:$api_port/readyz" -pid "$apiserver_pid" \
    -certs "$certs" -timeout 120s; then
    stop_started
    if lost_port_race "$dir/kube-apiserver.log"; then
      log "kube-apiserver port taken meanwhile, retrying (attempt $attempt)"
      rm -rf "$dir/etcd-data"
      continue
    fi
    log "kube-apiserver did not become ready; last lines of $dir/kube-apiserver.log:"
    tail -n 30 "$dir/kube-apiserver.log" >&2
    exit 1
  fi
  started=true
  break
done
if [[ "$started" != true ]]; then
  log "could not get free ports after 3 attempts"
  exit 1
fi
"$TESTBED_TOOL_BIN" kubeconfig "$certs" "https://127.0.0.1:$api_port"
mv "$certs/kubeconfig" "$certs/user.kubeconfig" "$dir/"
echo "$apiserver_pid $etcd_pid" >"$dir/pids"
cat >"$dir/env" <<ENV
export SIGSCI_KIT_TEST_KUBECONFIG='$dir/kubeconfig'
export KUBECONFIG='$dir/kubeconfig'
export SIGSCI_KIT_TEST_USER_KUBECONFIG='$dir/user.kubeconfig'
export SIGSCI_KIT_TEST_KUBE_PIDS='$apiserver_pid $etcd_pid'
export SIGSCI_KIT_TEST_KUBECTL='$KUBECTL_BIN'
export SIGSCI_KIT_TEST_HELM='$HELM_BIN'
ENV
trap - ERR INT TERM
log "kube-apiserver $KUBE_VERSION ready at https://127.0.0.1:$api_port (etcd $ETCD_VERSION) in $((SECONDS - start))s; source $dir/env"
