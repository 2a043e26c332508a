#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a bounded time and prints, per target, how many inputs it
# executed and whether it found a crash.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default: 60 seconds, every target)
#
# The machine has only a stable toolchain: cargo-fuzz's nightly flags are enabled with
# RUSTC_BOOTSTRAP=1. The targets are built without a sanitizer (`-s none`: the code under test is
# safe Rust) but with debug assertions and overflow checks on. Findings are kept in
# fuzz/artifacts/<target>/ and the corpus grows in fuzz/corpus/<target>/ (seeded from
# fuzz/seeds/<target>/). Exits non-zero if any target crashed.
set -euo pipefail

SECS="${1:-60}"
shift || true
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: installing it from crates.io (takes a few minutes)" >&2
    cargo install cargo-fuzz --locked
fi
if ! command -v c++ >/dev/null 2>&1; then
    echo "libfuzzer-sys needs a C++ compiler: install one (e.g. apt-get install -y g++)" >&2
    exit 1
fi

if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(cargo fuzz list)
fi

FLAGS=(-s none --debug-assertions)
echo "building ${#TARGETS[@]} fuzz targets" >&2
cargo fuzz build "${FLAGS[@]}" >&2

LOGS="$ROOT/fuzz/target/fuzz-logs"
mkdir -p "$LOGS"
SUMMARY=()
FAILED=0
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    SEEDS=()
    [ -d "seeds/$t" ] && SEEDS=("seeds/$t")
    log="$LOGS/$t.log"
    echo "fuzzing $t for ${SECS}s" >&2
    set +e
    # stdout is closed for the target (-close_fd_mask=1): the program logs through stdout.
    cargo fuzz run "${FLAGS[@]}" "$t" "corpus/$t" "${SEEDS[@]}" -- \
        -max_total_time="$SECS" -close_fd_mask=1 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    if [ -z "$execs" ]; then
        execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    fi
    crashes=$(find "artifacts/$t" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
    corpus=$(find "corpus/$t" -type f | wc -l)
    if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        FAILED=1
        status="CRASH (exit $rc, see $log and fuzz/artifacts/$t/)"
    else
        status="ok"
    fi
    SUMMARY+=("$(printf '%-20s %6ss  executions %12s  coverage %6s  corpus %6s  crashes %3s  %s' \
        "$t" "$SECS" "${execs:-?}" "${cov:-?}" "$corpus" "$crashes" "$status")")
done

echo
echo "fuzz summary (${SECS}s per target)"
printf '%s\n' "${SUMMARY[@]}"
exit "$FAILED"
