#!/usr/bin/env bash
# Benchmarks: the service next to raw CouchDB requests, same run, same PouchDB Server.
# scripts/bench.sh [core|listings|loa|fuzz ...]   (no argument: every section). Prints markdown tables.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_system_packages
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  as_root apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq wrk >/dev/null
fi
ensure_node_packages
cargo build --release --locked --quiet
export KPR_BIN="$ROOT/target/release/kazoo-port-requests"
start_fresh_stack bench
cargo bench --locked --bench service -- "$@"
