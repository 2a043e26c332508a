#!/usr/bin/env bash
# Builds the oracle, the local JSON-RPC endpoint and the load generator with optimizations (the
# `bench` profile: no fat LTO, so it builds in minutes) and runs the load generator against them
# on loopback. Arguments are passed to `backhaul-load run` and override the defaults below;
# see docs/load.md.
#
#   scripts/load.sh                               # 60 s of ingest, the close, 60 s of proofs
#   scripts/load.sh --duration 90s --json load.json
#   scripts/load.sh --ingest-duration 5m --proof-duration 5m --ingest-rate 5000   # memory soak
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --profile bench -p backhaul-oracle -p backhaul-localnet -p backhaul-load
# Cargo puts the bench profile's binaries in target/release (or $CARGO_TARGET_DIR/release).
bin="${CARGO_TARGET_DIR:-target}/release"
exec "$bin/backhaul-load" run \
    --oracle-bin "$bin/backhaul-oracle" --localnet-bin "$bin/backhaul-localnet" "$@"
