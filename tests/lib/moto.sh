#!/usr/bin/env bash
# moto server for S3 and Secrets Manager on a free loopback port.
#   tests/lib/moto.sh start DIR   -> writes DIR/moto.env (export SIGSCI_KIT_TEST_MOTO_URL=...)
#   tests/lib/moto.sh stop DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
action=${1:?start|stop}
dir=${2:?state directory}
mkdir -p "$dir"
case "$action" in
  start)
    port=$("$root/target/venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$root/target/venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
    echo $! >"$dir/moto.pid"
    for _ in $(seq 1 100); do
      if curl -fsS "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then
        cat >"$dir/moto.env" <<ENV
export SIGSCI_KIT_TEST_MOTO_URL=http://127.0.0.1:$port
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
ENV
        echo "moto on http://127.0.0.1:$port"
        exit 0
      fi
      sleep 0.2
    done
    echo "moto did not start; log follows" >&2
    cat "$dir/moto.log" >&2
    exit 1
    ;;
  stop)
    if [[ -f "$dir/moto.pid" ]]; then
      kill "$(cat "$dir/moto.pid")" 2>/dev/null || true
      rm -f "$dir/moto.pid"
    fi
    ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
