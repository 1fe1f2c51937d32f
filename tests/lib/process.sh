#!/usr/bin/env bash
# Sourced by suites that start background processes: stopping them never hangs a run.

# terminate_within SECONDS PID: SIGTERM to PID (a child of this shell), then wait for it.
# Returns its exit status; if it is still running after SECONDS it is SIGKILLed and the
# status is 137.
terminate_within() {
  local seconds=$1 pid=$2 status=0 watchdog
  kill -TERM "$pid" 2>/dev/null || true
  (
    sleep "$seconds" &
    trap 'kill $! 2>/dev/null; exit 0' TERM
    wait $!
    kill -KILL "$pid" 2>/dev/null
  ) </dev/null >/dev/null 2>&1 & # a stray sleep must not hold the run's output open
  watchdog=$!
  wait "$pid" || status=$?
  kill -TERM "$watchdog" 2>/dev/null || true
  wait "$watchdog" 2>/dev/null || true
  return "$status"
}

# start_simulator KIT WORK [ARGS...]: `KIT sim` on a free loopback port, in the background, its
# output in WORK/sim.out and WORK/sim.err. Sets sim_pid, and sim_url once it prints its URL;
# fails showing its stderr if that takes over 10 s.
start_simulator() {
  local kit=$1 work=$2
  shift 2
  "$kit" sim --listen 127.0.0.1:0 "$@" >"$work/sim.out" 2>"$work/sim.err" &
  sim_pid=$!
  for _ in $(seq 100); do
    [[ -s "$work/sim.out" ]] && break
    sleep 0.1
  done
  sim_url=$(head -n1 "$work/sim.out")
  [[ "$sim_url" == http://127.0.0.1:* ]] || { echo "simulator did not start: $(cat "$work/sim.err")" >&2; return 1; }
}
