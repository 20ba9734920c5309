#!/usr/bin/env bash
# Runs every test: fresh PouchDB Server and MailDev on free ports, then `cargo test`.
# Extra arguments go to cargo test (e.g. scripts/test.sh lifecycle -- --nocapture).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_system_packages
ensure_node_packages
start_fresh_stack test
export LOG="${LOG:-warn}"
log "CouchDB-compatible server on $COUCHDB_URL, MailDev on $MAILDEV_URL"
cargo test --locked "$@"
# the OpenAPI contract, unless only some tests were asked for
if [ $# -eq 0 ]; then
  bash "$ROOT/scripts/contract.sh"
fi
