#!/usr/bin/env bash
# Runs the end-to-end suite several times in a row (RUNS, default 3) while
# CPU-bound processes (HOGS, default 2) compete for the machine, as on a
# shared CI machine. The hogs are started here and stopped on exit,
# whatever happens. Prints each run's time; fails on the first failing run.
#
#   internal/e2e/under-load.sh            # 3 runs beside 2 hogs
#   RUNS=1 HOGS=4 internal/e2e/under-load.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

runs="${RUNS:-3}"
hogs="${HOGS:-2}"
pids=()
stop_hogs() {
	if [ "${#pids[@]}" -gt 0 ]; then
		kill "${pids[@]}" 2>/dev/null || true
		wait "${pids[@]}" 2>/dev/null || true
	fi
}
trap stop_hogs EXIT

for _ in $(seq 1 "$hogs"); do
	yes >/dev/null &
	pids+=("$!")
done
echo "under load: $hogs CPU-bound processes beside the suite, $runs runs"

for run in $(seq 1 "$runs"); do
	begin=$(date +%s)
	if ! go test -race -count=1 ./internal/e2e/; then
		echo "run $run failed after $(($(date +%s) - begin)) s" >&2
		exit 1
	fi
	echo "run $run passed in $(($(date +%s) - begin)) s"
done
