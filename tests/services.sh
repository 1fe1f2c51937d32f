#!/usr/bin/env bash
# The real services the tests need, for working on one crate or suite without the whole run:
#   tests/services.sh up DIR [moto] [k8s]   starts them (both when none is named) and writes DIR/env
#   tests/services.sh down DIR              stops what `up DIR` started
# Then:  source DIR/env && cargo test --release -p CRATE   (or tests/SUITE/run.sh)
# moto serves S3 and Secrets Manager (SIGSCI_KIT_TEST_MOTO_URL); k8s is a real kube-apiserver + etcd
# (SIGSCI_KIT_TEST_KUBECONFIG, kubectl, helm), built from their Go modules into target/k8s-bin on
# first use. tests/run.sh starts its services through this script too.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
usage() { echo "usage: $0 up DIR [moto] [k8s] | down DIR" >&2; exit 2; }
action=${1-}
dir=${2-}
[[ -n "$action" && -n "$dir" ]] || usage
shift 2

case "$action" in
  up)
    services=("$@")
    ((${#services[@]})) || services=(moto k8s)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    : >"$dir/env"
    for service in "${services[@]}"; do
      case "$service" in
        moto)
          "$root/tests/lib/venv.sh"
          "$root/tests/lib/moto.sh" start "$dir"
          printf 'source %q\n' "$dir/moto.env" >>"$dir/env"
          ;;
        k8s)
          "$root/tests/k8s/start.sh" "$dir/k8s"
          printf 'source %q\n' "$dir/k8s/env" >>"$dir/env"
          ;;
        *) echo "unknown service $service (moto, k8s)" >&2; exit 2 ;;
      esac
    done
    echo "services up; source $dir/env"
    ;;
  down)
    [[ -d "$dir/k8s" ]] && "$root/tests/k8s/stop.sh" "$dir/k8s"
    "$root/tests/lib/moto.sh" stop "$dir"
    rm -f "$dir/env"
    ;;
  *) usage ;;
esac
