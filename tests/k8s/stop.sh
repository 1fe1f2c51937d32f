#!/usr/bin/env bash
# Usage: tests/k8s/stop.sh DIR
# Stops the kube-apiserver and etcd that start.sh DIR started (only those
# processes, by the ids in DIR/pids) and removes the etcd data. Logs stay.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
if [[ ! -f "$1/pids" ]]; then
  echo "k8s stop: nothing to stop ($1/pids is missing)" >&2
  exit 0
fi
dir=$(cd "$1" && pwd -P)

# The API server is listed first, so it does not log etcd errors while stopping.
read -r -a pids <"$dir/pids"
for pid in "${pids[@]}"; do
  testbed_process "$pid" "$dir" || continue
  kill -TERM "$pid" 2>/dev/null || continue
  for _ in $(seq 1 100); do
    testbed_process "$pid" "$dir" || break
    sleep 0.1
  done
  if testbed_process "$pid" "$dir"; then
    echo "k8s stop: pid $pid ignored SIGTERM for 10s, killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
done
rm -rf "$dir/pids" "$dir/etcd-data"
