#!/usr/bin/env bash
# Runs every test. On a fresh CouchDB and MailDev on free ports: the unit tests and the API tests
# (tests/api), a check that no document carries a conflict, and the OpenAPI contract; then, on a
# fresh 3-node cluster, the cluster suite (tests/cluster: two instances on different nodes) and
# the conflict check again. The CouchDB is Apache CouchDB 3.4.3 from ../shared/couchdb when it
# is there, PouchDB Server otherwise (the cluster suite needs Apache CouchDB), or the server
# named by TEST_COUCHDB_URL (and TEST_CLUSTER_URLS for the cluster suite: every node, comma-
# separated; its node loss test also needs TEST_CLUSTER_DIR, a start-cluster.sh folder).
#
#   scripts/test.sh                   everything
#   scripts/test.sh ARGS...           the unit and API tests only, ARGS going to cargo test
#                                     (e.g. scripts/test.sh lifecycle -- --nocapture)
#   scripts/test.sh cluster [ARGS]    the cluster suite only
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_system_packages
ensure_node_packages
start_fresh_stack test
export LOG="${LOG:-warn}"
# the fault test stops its own CouchDB for this long under load
export FAULT_OUTAGE_SECS="${FAULT_OUTAGE_SECS:-30}"

cluster_suite() {
  local urls dir=""
  if [ -n "${TEST_CLUSTER_URLS:-}" ]; then
    urls=$TEST_CLUSTER_URLS; dir=${TEST_CLUSTER_DIR:-}
  elif have_couchdb; then
    start_couchdb "$WORK/cluster" cluster
    urls=$COUCH_STARTED_URL; dir="$WORK/cluster"
  else
    log "no Apache CouchDB here: the cluster suite is skipped (PouchDB Server has no cluster)"
    return 0
  fi
  log "cluster suite on $(tr "," "\n" <<<"$urls" | wc -l) nodes"
  KPR_CLUSTER_URLS="$urls" KPR_CLUSTER_DIR="$dir" COUCHDB_URL="${urls%%,*}" \
    cargo test --locked --test cluster "$@"
  python3 "$ROOT/scripts/no-conflicts.py" "$urls"
}

if [ "${1:-}" = cluster ]; then
  shift
  cluster_suite "$@"
  exit 0
fi
log "$COUCHDB_KIND, MailDev on $MAILDEV_URL"
cargo test --locked --lib --bins --test api "$@"
if [ $# -eq 0 ]; then
  python3 "$ROOT/scripts/no-conflicts.py" "$COUCHDB_URL"
  bash "$ROOT/scripts/contract.sh"
  cluster_suite
fi
