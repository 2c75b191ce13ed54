#!/usr/bin/env bash
# Run the whole suite over and over, optionally several suites at once, to find a test that fails
# one time in twenty before CI does.
#
#   tests/stress.sh [-n RUNS] [-j AT_ONCE] [-- PYTEST_ARGS...]
#
#   -n RUNS      suites to run in all (default 10)
#   -j AT_ONCE   suites running at the same time (default 1; 2 loads this 2-core machine)
#   PYTEST_ARGS  what each suite runs (default: --cov, the README's test command)
#
# Each suite running at once gets its own temporary folder and coverage file. Logs go to
# $STRESS_LOGS (default: a new folder under /tmp), one file per run. Prints one line per run,
# then the totals, the slowest test seen, and any process of ours still running; exits 1 if any
# run failed or left a process behind.
set -uo pipefail
cd "$(dirname "$0")/.."

runs=10
at_once=1
while [ $# -gt 0 ]; do
    case "$1" in
        -n) runs=$2; shift 2 ;;
        -j) at_once=$2; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "stress.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ $# -gt 0 ] || set -- --cov
logs=${STRESS_LOGS:-$(mktemp -d /tmp/arduino-mesh-stress.XXXXXX)}
mkdir -p "$logs"
pytest=${PYTEST:-pytest}
[ -x .venv/bin/pytest ] && [ -z "${PYTEST:-}" ] && pytest=.venv/bin/pytest

one_run() {  # one_run RUN SLOT: a whole suite in its own temporary folder and coverage file
    local run=$1 slot=$2 log="$logs/run-$1.log" began
    shift 2
    began=$(date +%s)
    COVERAGE_FILE="$logs/slot-$slot/.coverage" "$pytest" -p no:cacheprovider --basetemp "$logs/slot-$slot/tmp" \
        --durations=5 "$@" >"$log" 2>&1
    local rc=$? summary
    # The summary line, with or without its ===== (pytest -q drops them).
    summary=$(grep -E '^=* *[0-9]+ (passed|failed|error).* in [0-9.]+s' "$log" | tail -n 1 | tr -d '=' | sed 's/^ *//; s/ *$//')
    echo "run $run (slot $slot, $((($(date +%s) - began)))s): rc=$rc ${summary:-no summary; see $log}"
    return $rc
}

# Stopped (Ctrl-C, SIGTERM): stop the suites too; each one's teardown kills what its test started.
trap 'trap - INT TERM; echo "stress: stopped"; kill -TERM 0 2>/dev/null; wait; exit 130' INT TERM

echo "stress: $runs run(s), $at_once at once, pytest $*; logs in $logs"
failed=0
run=0
while [ $run -lt "$runs" ]; do
    pids=()
    for slot in $(seq 1 "$at_once"); do
        [ $run -lt "$runs" ] || break
        run=$((run + 1))
        mkdir -p "$logs/slot-$slot"
        one_run "$run" "$slot" "$@" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || failed=$((failed + 1))
    done
done

echo "stress: $runs run(s), $failed failed ($at_once at once)"
grep -hE '^[0-9.]+s (call|setup|teardown) ' "$logs"/run-*.log | sort -rn | head -n 1 | sed 's/^/stress: slowest test: /'
grep -hE '^(FAILED|ERROR) ' "$logs"/run-*.log | sort | uniq -c | sed 's/^/stress: /'
left=$(pgrep -af 'arduino\.py|bin/arduino |honcho|mosquitto|chromium.*--headless' | grep -v -e pgrep -e stress.sh || true)
if [ -n "$left" ]; then
    echo "stress: still running after the runs:"
    echo "$left" | sed 's/^/    /'
    failed=$((failed + 1))
fi
[ "$failed" -eq 0 ]
