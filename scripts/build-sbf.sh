#!/usr/bin/env bash
# Builds the program's SBF bytecode: target/deploy/backhaul.so (or $SBF_OUT_DIR/backhaul.so), which
# the program tests, the local endpoint, the oracle's and the command line's tests load.
#
# Uses `cargo build-sbf` when the Solana toolchain is installed; otherwise the toolchain named by
# BACKHAUL_SBF_TOOLCHAIN (an executable taking <workspace> <package> <out dir>). Fails, saying what
# to install, when there is neither: nothing falls back to the host build.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${SBF_OUT_DIR:-target/deploy}
mkdir -p "$out"
start=$SECONDS
if command -v cargo-build-sbf >/dev/null 2>&1; then
  echo "building the program with cargo build-sbf into $out"
  cargo build-sbf --manifest-path programs/backhaul/Cargo.toml --sbf-out-dir "$out"
elif [[ -n "${BACKHAUL_SBF_TOOLCHAIN:-}" ]]; then
  if [[ ! -x "$BACKHAUL_SBF_TOOLCHAIN" ]]; then
    echo "error: BACKHAUL_SBF_TOOLCHAIN=$BACKHAUL_SBF_TOOLCHAIN is not an executable file" >&2
    exit 1
  fi
  echo "building the program with $BACKHAUL_SBF_TOOLCHAIN into $out"
  "$BACKHAUL_SBF_TOOLCHAIN" . backhaul "$out"
else
  cat >&2 <<'MSG'
error: no SBF toolchain to build the program with.
  Install the Solana toolchain (it provides `cargo build-sbf`; see
  https://solana.com/docs/intro/installation), or set BACKHAUL_SBF_TOOLCHAIN to a script that
  builds a package into SBF: `<script> <workspace> <package> <out dir>`.
  (To debug with the host build instead, run the tests with BACKHAUL_PROGRAM=host.)
MSG
  exit 1
fi
test -s "$out/backhaul.so"
echo "built $out/backhaul.so ($(stat -c %s "$out/backhaul.so") bytes) in $((SECONDS - start)) s"
