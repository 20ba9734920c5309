#!/usr/bin/env bash
# Benchmarks: the service next to raw CouchDB requests, same run, same PouchDB Server.
# scripts/bench.sh [listings|loa ...]   (no argument: every section). Prints markdown tables.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_system_packages
ensure_node_packages
cargo build --release --locked --quiet
export KPR_BIN="$ROOT/target/release/kazoo-port-requests"
start_fresh_stack bench
cargo bench --locked --bench service -- "$@"
