#!/usr/bin/env bash
# Benchmarks: the service next to the raw CouchDB requests it needs, same run, same server.
# On Apache CouchDB 3.4.3 from ../shared/couchdb when it is there (USE_POUCHDB=1: PouchDB Server),
# with a 3-node cluster for the `cluster` section.
# scripts/bench.sh [core|deliveries|bus|cluster|listings|desk|loa|import|fuzz ...]   (no argument: every
# section; `bus` also runs `core` again with AMQP_URL set).
# Prints markdown tables.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_system_packages
# wrk makes the load; a bare nginx proxy is the reference for what one more HTTP hop costs
missing=()
command -v wrk >/dev/null || missing+=(wrk)
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
ensure_node_packages
cargo build --release --locked --quiet
export KPR_BIN="$ROOT/target/release/kazoo-port-requests"
start_fresh_stack bench
log "benchmarks on $COUCHDB_KIND"
wanted() { for s in "${SECTIONS[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
SECTIONS=("$@")
for section in core deliveries bus listings desk loa import fuzz; do
  if [ $# -eq 0 ] || wanted "$section"; then
    cargo bench --locked --bench service -- "$section"
    if [ "$section" = bus ]; then
      KPR_BENCH_WITH_BUS="$KPR_AMQP_URL" cargo bench --locked --bench service -- core-with-bus
    fi
  fi
done
# the cluster last, and only then started: three idle nodes would weigh on the other sections
if have_couchdb && { [ $# -eq 0 ] || wanted cluster; }; then
  start_couchdb "$WORK/cluster" cluster
  KPR_BENCH_CLUSTER_URL="${COUCH_STARTED_URL%%,*}" cargo bench --locked --bench service -- cluster
fi
