#!/usr/bin/env bash
# Every performance figure in one table: tests/bench.sh [RUNS] (default 5). Not part of the test
# command or CI: it needs a quiet machine and takes about RUNS × 6 minutes on 2 cores.
#
# Builds the workspace and the Lambda zips once, then runs each benchmark RUNS times: the client's
# paging (crates/sigsci), the feed export (crates/feed-export: wall, CPU, peak RSS), agent health
# at 1000 sites (crates/agent-health), the Lambdas' start-up (functions/agent-health's `startup`,
# which also starts the feed-export and ack-url binaries and has the feed-export one export a busy
# hour into moto's S3), and the CLI's own peak RSS for one hour
# of 100k and of 2M records (`/usr/bin/time -f %M`, the kernel's maximum RSS). The benchmarks print
# tab-separated `figure` lines (name, value, comparison, target); the table shows, per figure, the
# median, min–max, the target and pass/fail. Ratios are measured side by side within one run, so
# they hold on a slower machine; absolute times are context only. A benchmark failing in a run
# leaves its figures of that run out (the row says how many runs it has); the exit status is
# non-zero when a figure misses its target or lacks runs, after the whole table is printed. The
# paging and feed-export benchmarks run their simulator on a CPU of its own and themselves on the
# others (a remote API takes no CPU from its client); the paging one adds a row with both sharing
# every CPU, as context.
#
# The start-up figures are of the native release binaries with an emulated Runtime API (the
# emulator route of tests/deploy needs the arm64 zips); the zip sizes are those of the arm64
# packages the Terraform module deploys, built here by scripts/package.sh (~8 min on a fresh
# machine, seconds when its build is current), so they are of this code.
set -euo pipefail

runs="${1:-5}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=lib/cargo.sh
source tests/lib/cargo.sh
workspace_build
# The arm64 Lambda zips of this code, for the zip size rows.
scripts/package.sh --lambdas-only >/dev/null

# The benchmarks' full output stays in target/bench/log for a look at what a figure came from.
work="$root/target/bench"
rm -rf "$work"
mkdir -p "$work"
sims=()
services=""
cleanup() {
  for pid in "${sims[@]}"; do kill "$pid" 2>/dev/null || true; done
  tests/lib/moto.sh stop "$work/moto" >/dev/null 2>&1 || true
  if [[ -n "$services" ]]; then tests/services.sh down "$services" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

# moto for the feed-export Lambda's invocation: its bucket and the credentials secret it reads
# (the simulator accepts any credentials).
tests/lib/venv.sh >/dev/null
tests/lib/moto.sh start "$work/moto" >/dev/null
# shellcheck source=/dev/null
source "$work/moto/moto.env"
moto_url="$SIGSCI_KIT_TEST_MOTO_URL"
target/venv/bin/python - "$moto_url" <<'PY'
import json, sys, boto3
url = sys.argv[1]
boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket="bench-feed")
boto3.client("secretsmanager", endpoint_url=url, region_name="us-east-1").create_secret(
    Name="bench/feed-credentials", SecretString=json.dumps({"email": "sim@example.com", "token": "sim-token"}))
PY

declare -A bench
while read -r name path; do
  bench[$name]="$path"
done < <(cargo build --release --workspace --all-targets --quiet --message-format=json 2>/dev/null |
  jq -r 'select(.reason == "compiler-artifact" and .executable != null and (.target.kind | index("bench"))) | "\(.target.name) \(.executable)"')
for name in feed_paging feed_export evaluate startup load; do
  [[ -x "${bench[$name]-}" ]] || { echo "bench.sh: benchmark $name not built" >&2; exit 1; }
done
kit="$root/target/release/sigsci-kit"
figures="$work/figures.tsv"
# record_figures RUN, benchmark output on stdin: all of it to the log (for a look at what a figure
# came from), its `figure` lines to the table, each with the run it came from.
record_figures() {
  tee -a "$work/log" | { grep $'^figure\t' || true; } | RUN="$1" awk '{ print $0 "\t" ENVIRON["RUN"] }' >>"$figures"
}

# cli_rss LABEL RECORDS [FORMAT]: one hour of RECORDS records exported by the CLI as users run it
# (one site, local directory, ndjson unless FORMAT): a figure line with the process's maximum RSS.
cli_rss() {
  local label="$1" records="$2" format="${3:-ndjson}" port dir now hour pid name
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  "$kit" sim --listen "127.0.0.1:$port" --sites 1 --rps "$(python3 -c "print($records / 3600)")" >"$work/sim.log" 2>&1 &
  pid=$!
  sims+=("$pid")
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/__sim/clock" >/dev/null && break; sleep 0.1; done
  now="$(curl -sf "http://127.0.0.1:$port/__sim/clock" | jq .now)"
  hour=$(((now - 300) / 3600 * 3600 - 3600))
  dir="$work/cli-out"
  rm -rf "$dir"
  SIGSCI_API_URL="http://127.0.0.1:$port" SIGSCI_CORP=testcorp SIGSCI_EMAIL=sim@example.com SIGSCI_API_TOKEN=sim-token \
    /usr/bin/time -f '%M' -o "$work/time" "$kit" feed export --out "$dir" --site site-1 --format "$format" \
    --from "$hour" --until "$((hour + 3600))" >/dev/null 2>"$work/cli.log" ||
    { cat "$work/cli.log" >&2; return 1; }
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  name="CLI feed export peak RSS"
  [[ "$format" == ndjson ]] || name="$name ($format)"
  printf 'figure\t%s, %s records (MiB)\t%.1f\t<=\t40\n' "$name" "$label" "$(python3 -c "print($(tail -1 "$work/time") / 1024)")"
}

lambda_sizes() {
  local name stripped
  for name in feed-export agent-health ack-url; do
    stripped="$work/$name"
    cp "target/release/$name" "$stripped" && strip "$stripped"
    printf 'figure\tLambda %s: binary size, native stripped (MB)\t%.1f\t\t\n' "$name" "$(python3 -c "print($(stat -c %s "$stripped") / 1e6)")"
    printf 'figure\tLambda %s: zip size, arm64 package (MB)\t%.1f\t<=\t8\n' "$name" "$(python3 -c "print($(stat -c %s "target/lambda/$name/bootstrap.zip") / 1e6)")"
  done
}

for run in $(seq "$runs"); do
  echo "bench.sh: run $run of $runs" >&2
  # A failing benchmark leaves its figures out of the table (and says so) rather than ending the run.
  {
    lambda_sizes
    "${bench[feed_paging]}" || echo "bench.sh: feed_paging failed" >&2
    "${bench[feed_export]}" || echo "bench.sh: feed_export failed" >&2
    "${bench[evaluate]}" || echo "bench.sh: evaluate failed" >&2
    # The exports above leave hundreds of MB to write back; start-up is timed without that I/O.
    sync
    SIGSCI_KIT_BENCH_MOTO_URL="$moto_url" "${bench[startup]}" \
      --init-only "feed-export=$root/target/release/feed-export" \
      --init-only "ack-url=$root/target/release/ack-url" \
      --invoke-feed "$root/target/release/feed-export" || echo "bench.sh: startup failed" >&2
    cli_rss 100k 100000 || echo "bench.sh: CLI export of 100k records failed" >&2
    cli_rss 2M 2000000 || echo "bench.sh: CLI export of 2M records failed" >&2
    cli_rss 100k 100000 ocsf-parquet || echo "bench.sh: CLI OCSF export of 100k records failed" >&2
    cli_rss 2M 2000000 ocsf-parquet || echo "bench.sh: CLI OCSF export of 2M records failed" >&2
  } 2>&1 | record_figures "$run"
done

# The operator's benchmark (operator/benches/load.rs) runs on the kube-apiserver test bed, started
# only now: an idle API server and etcd take a tenth of a core, and the figures above share two
# cores with nothing else (client paging measured 1.16–1.26 beside them, 0.97–1.05 without).
if [[ -z "${SIGSCI_KIT_TEST_KUBECONFIG-}" ]]; then
  services="$work/services"
  tests/services.sh up "$services" k8s >/dev/null
  # shellcheck source=/dev/null
  source "$services/env"
fi
for run in $(seq "$runs"); do
  echo "bench.sh: operator load, run $run of $runs" >&2
  "${bench[load]}" "$root/target/release/sigsci-operator" 2>&1 | record_figures "operator $run" ||
    echo "bench.sh: operator load failed" >&2
done

python3 - "$figures" "$runs" <<'EOF'
import statistics, sys
from collections import OrderedDict

rows = OrderedDict()
for line in open(sys.argv[1], encoding="utf-8"):
    _, name, value, op, target, run = (line.rstrip("\n").split("\t") + [""] * 6)[:6]
    entry = rows.setdefault(name, {"values": [], "op": op, "target": target, "runs": {}})
    entry["values"].append(float(value))
    entry["runs"][run] = float(value)
# The CLI's 2M ÷ 100k per format, of the runs where both exports succeeded.
for name in ("CLI feed export peak RSS", "CLI feed export peak RSS (ocsf-parquet)"):
    small = rows.get(f"{name}, 100k records (MiB)")
    large = rows.get(f"{name}, 2M records (MiB)")
    if small and large:
        both = [run for run in small["runs"] if run in large["runs"]]
        rows[f"{name}, 2M ÷ 100k"] = {
            "values": [large["runs"][run] / small["runs"][run] for run in both],
            "op": "<=", "target": "1.10"}
runs = int(sys.argv[2])
failed, short = 0, 0
print(f"{'figure':<66} {'median':>8} {'min–max':>17} {'target':>8}  result")
for name, row in rows.items():
    values = row["values"]
    median = statistics.median(values)
    spread = f"{min(values):.3g}–{max(values):.3g}"
    if row["op"]:
        target = float(row["target"])
        ok = median <= target if row["op"] == "<=" else median >= target
        failed += not ok
        verdict, shown = ("pass" if ok else "FAIL"), f"{row['op']} {row['target']}"
    else:
        verdict, shown = "", ""
    # A run whose benchmark failed leaves no value: its median is of fewer runs, said so here.
    if len(values) < runs:
        short += 1
        verdict = f"{verdict}, {len(values)} of {runs} runs".lstrip(", ")
    print(f"{name:<66} {median:>8.3g} {spread:>17} {shown:>8}  {verdict}")
print(f"(median of {runs} runs)")
if failed or short:
    print(f"bench.sh: {failed} figure(s) miss their target, {short} lack runs "
          "(their benchmarks' errors are in target/bench/log)", file=sys.stderr)
    sys.exit(1)
EOF
