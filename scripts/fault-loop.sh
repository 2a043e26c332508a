#!/usr/bin/env bash
# Runs the oracle's SIGKILL fault loop: three oracle processes (threshold two) killed at random
# moments of ingest, epoch close and submission, restarted on the same data, KILLS times in all
# (200 by default), then prints the summary: kills survived, receipts acknowledged, items lost,
# datasets changed, double votes. BACKHAUL_FAULT_SEED repeats a run; the seed is printed.
# `cargo test` runs the same loop with 10 kills.
set -euo pipefail
cd "$(dirname "$0")/.."
kills="${1:-200}"
log=$(mktemp)
echo "fault loop: $kills kills (full output in $log)"
status=0
BACKHAUL_FAULT_KILLS="$kills" RUST_LOG="${RUST_LOG:-error}" \
    cargo test --locked -p backhaul-oracle --test faults -- --exact \
    kill_loop::sigkill_loop_loses_nothing_changes_no_dataset_and_never_double_votes \
    --nocapture >"$log" 2>&1 || status=$?
grep -E '^(fault loop|epoch [0-9]+ finalized|test result|  )' "$log" | grep -vE '^  log:' || true
if [ "$status" -ne 0 ]; then
    echo
    echo "FAILED (exit $status); the end of the output:"
    tail -n 60 "$log"
fi
exit "$status"
