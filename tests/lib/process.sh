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
