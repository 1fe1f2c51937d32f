#!/usr/bin/env bash
# The operator image as a cluster would run it: built by scripts/operator-image.sh (buildah, FROM scratch)
# under the chart's default name, exported as an OCI layout and unpacked with umoci. It must hold only the
# static binary and the CA bundle, run as 65532:65532. Its entrypoint is started as a kubelet would, as uid
# 65532 on a read-only root with a service-account token of the chart's RBAC (in-cluster config, no
# kubeconfig), against the test bed: a SigSciConnection to the simulator becomes Ready, and SIGTERM stops it.
# Needs the k8s test bed (tests/services.sh), buildah/skopeo/umoci (install-deps.sh), and
# target/operator-image from scripts/package.sh.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
# shellcheck source=tests/lib/testbed.sh
source "$root/tests/lib/testbed.sh"
# shellcheck source=tests/lib/process.sh
source tests/lib/process.sh
# shellcheck source=tests/lib/operator.sh
source tests/lib/operator.sh
say() { echo "operator-image: $*"; }
fail() { echo "operator-image: $*" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/sigsci-operator-image.XXXXXX")
release="sigsci-operator-image-$$"
namespace="$release"
pid=""
sim_pid=""
finish() {
  # A SIGTERM'd process's status must not become the script's (errexit applies inside the trap).
  if [[ -n "$pid" ]]; then
    say "log of the operator:"
    cat "$work/log" >&2 || true
    terminate_within 5 "$pid" || true
  fi
  if [[ -n "$sim_pid" ]]; then terminate_within 5 "$sim_pid" || true; fi
  kc delete namespace "$namespace" "$namespace-app" --wait=false >/dev/null 2>&1 || true
  if [[ -f "$work/chart.yaml" ]]; then kc delete -f "$work/chart.yaml" --ignore-not-found --wait=false >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap finish EXIT

# --- build and export -------------------------------------------------------------------------
oci="$root/target/operator-image.oci"
scripts/operator-image.sh --skip-binary --oci "$oci" | tee "$work/build.out"
reference=$(sed -n 's/^operator-image.sh: \([^ ]*\) -> .*/\1/p' "$work/build.out")
tag=${reference##*:}
# The chart, rendered with its defaults, deploys exactly the image just built.
chart_image=$("$helm" template "$release" charts/sigsci-operator --namespace "$namespace" |
  sed -n 's/^ *image: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p')
[[ "$chart_image" == "$reference" ]] || fail "the chart deploys $chart_image, the build made $reference"

# --- what the image holds ---------------------------------------------------------------------
skopeo inspect --config "oci:$oci:$tag" >"$work/config.json"
read -r user entrypoint < <(python3 -c '
import json, sys
config = json.load(open(sys.argv[1]))["config"]
print(config.get("User", ""), json.dumps(config.get("Entrypoint")))' "$work/config.json")
[[ "$user" == 65532:65532 ]] || fail "image user is '$user', not 65532:65532"
[[ "$entrypoint" == '["/sigsci-operator"]' ]] || fail "image entrypoint is $entrypoint"
mapfile -t image_env < <(python3 -c '
import json, sys
print("\n".join(json.load(open(sys.argv[1]))["config"].get("Env") or []))' "$work/config.json")

umoci unpack --image "$oci:$tag" "$work/bundle" >/dev/null
rootfs="$work/bundle/rootfs"
contents=$(cd "$rootfs" && find . -mindepth 1 -printf '%y %P\n' | sort)
expected=$'d etc\nd etc/ssl\nd etc/ssl/certs\nf etc/ssl/certs/ca-certificates.crt\nf sigsci-operator'
[[ "$contents" == "$expected" ]] || fail "the image holds more or less than the binary and the CA bundle:"$'\n'"$contents"
# Static: no program interpreter and no shared libraries (there are none in the image to load).
if readelf -lW "$rootfs/sigsci-operator" | grep -q 'program interpreter' ||
  readelf -dW "$rootfs/sigsci-operator" | grep -q '(NEEDED)'; then
  fail "sigsci-operator in the image is dynamically linked"
fi
grep -q 'BEGIN CERTIFICATE' "$rootfs/etc/ssl/certs/ca-certificates.crt" || fail "the CA bundle holds no certificate"
say "image $reference holds only /sigsci-operator (static) and /etc/ssl/certs/ca-certificates.crt; user 65532:65532"

# --- a service account with the chart's RBAC --------------------------------------------------
kc apply --server-side -f charts/sigsci-operator/crds/ >/dev/null
kc create namespace "$namespace" >/dev/null
"$helm" template "$release" charts/sigsci-operator --namespace "$namespace" --set replicaCount=0 >"$work/chart.yaml"
kc -n "$namespace" apply -f "$work/chart.yaml" >/dev/null
# The account the chart's ClusterRoleBinding grants to, whatever the values name it.
service_account=$(kc get clusterrolebindings -o jsonpath="{range .items[*].subjects[?(@.namespace==\"$namespace\")]}{.name}{'\n'}{end}" | sort -u)
[[ -n "$service_account" && "$service_account" != *$'\n'* ]] || fail "the chart binds no single service account in $namespace: '$service_account'"
# What the kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount.
secrets="$work/serviceaccount"
mkdir -p "$secrets"
kc -n "$namespace" create token "$service_account" --duration=1h >"$secrets/token"
kc config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$secrets/ca.crt"
printf '%s' "$namespace" >"$secrets/namespace"
chmod 0755 "$secrets" && chmod 0644 "$secrets"/*
server=$(kc config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
[[ "$server" =~ ^https://([0-9.]+):([0-9]+)$ ]] || fail "unexpected API server address $server"
api_host=${BASH_REMATCH[1]}
api_port=${BASH_REMATCH[2]}

# --- run the entrypoint as the pod would ------------------------------------------------------
# Mount points a container runtime adds to the image (the image itself has none).
mkdir -p "$rootfs/proc" "$rootfs/var/run/secrets/kubernetes.io/serviceaccount"
metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The pod's environment: the image's ENV, the service variables, the chart's downward-API variables.
pod_env=("${image_env[@]}" "KUBERNETES_SERVICE_HOST=$api_host" "KUBERNETES_SERVICE_PORT=$api_port"
  "POD_NAME=image-smoke" "POD_NAMESPACE=$namespace")
# A private mount namespace: the root bind-mounted read-only (submounts first, as a runtime does), then
# chroot and drop to 65532:65532 with no new privileges. The process keeps the host's network namespace,
# where the test bed listens on loopback.
# shellcheck disable=SC2016  # the inner script expands its own arguments
unshare --mount --propagation private -- bash -euc '
  rootfs=$1 secrets=$2 count=$3
  shift 3
  env=("${@:1:count}")
  shift "$count"
  mount --bind "$rootfs" "$rootfs"
  mount -t proc -o nosuid,nodev,noexec proc "$rootfs/proc"
  mount --bind "$secrets" "$rootfs/var/run/secrets/kubernetes.io/serviceaccount"
  mount -o remount,bind,ro "$rootfs/var/run/secrets/kubernetes.io/serviceaccount"
  mount -o remount,bind,ro "$rootfs"
  exec /usr/bin/env -i "${env[@]}" /usr/bin/setpriv --no-new-privs /usr/sbin/chroot --userspec=65532:65532 --groups=65532 "$rootfs" "$@"
' operator-image "$rootfs" "$secrets" "${#pod_env[@]}" "${pod_env[@]}" \
  /sigsci-operator --metrics-addr "127.0.0.1:$metrics_port" --log-format json --leader-election=true \
  >"$work/stdout" 2>"$work/log" &
pid=$!

for _ in $(seq 100); do
  curl -fsS --max-time 2 "http://127.0.0.1:$metrics_port/health" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || fail "the entrypoint exited; log: $(cat "$work/log")"
  sleep 0.2
done
[[ "$(curl -fsS --max-time 10 "http://127.0.0.1:$metrics_port/health")" == ok ]] || fail "/health does not answer ok"

# The process as the kernel sees it: uid/gid 65532, no capabilities, no new privileges, a read-only root.
status=$(cat "/proc/$pid/status")
grep -Eq $'^Uid:\t65532\t65532\t65532\t65532$' <<<"$status" || fail "not uid 65532: $(grep ^Uid <<<"$status")"
grep -Eq $'^Gid:\t65532\t65532\t65532\t65532$' <<<"$status" || fail "not gid 65532: $(grep ^Gid <<<"$status")"
grep -Eq $'^Groups:\t(65532 ?)?$' <<<"$status" || fail "supplementary groups: $(grep ^Groups <<<"$status")"
grep -Eq $'^CapEff:\t0+$' <<<"$status" || fail "effective capabilities: $(grep ^CapEff <<<"$status")"
grep -Eq $'^NoNewPrivs:\t1$' <<<"$status" || fail "no_new_privs is not set"
[[ "$(readlink "/proc/$pid/root")" == "$rootfs" ]] || fail "the root is $(readlink "/proc/$pid/root"), not the image's"
root_options=$(awk '$5 == "/" { print $6 }' "/proc/$pid/mountinfo" | tail -n1)
[[ ",$root_options," == *,ro,* ]] || fail "the root filesystem is mounted $root_options, not read-only"
say "entrypoint running as 65532:65532, no capabilities, read-only root ($root_options)"

# It reconciles: a connection to a running simulator becomes Ready.
sim_connection_ready "$work" "$namespace-app" ||
  fail "the SigSciConnection did not become Ready (${connection_ready:-no status})"
say "a SigSciConnection to the simulator became Ready"

# Like a kubelet: SIGTERM, and it must be gone well within the 30 s grace period.
exit_status=0
terminate_within 25 "$pid" || exit_status=$?
stopped=$pid
pid=""
((exit_status == 0)) || fail "exit status $exit_status after SIGTERM (137: still running after 25 s); log: $(cat "$work/log")"
holder=$(kc -n "$namespace" get lease -o jsonpath='{.items[*].spec.holderIdentity}')
[[ -z "$holder" ]] || fail "lease still held by $holder after SIGTERM (pid $stopped)"
say "built, holds only the binary and CA bundle, ran as 65532 on a read-only root, reconciled, stopped on SIGTERM"
