#!/usr/bin/env bash
# Benchmarks: the service next to raw CouchDB requests, same run, same PouchDB Server.
# scripts/bench.sh [listings ...]   (no argument: every section). Prints markdown tables.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_system_packages
ensure_node_packages
cargo build --release --locked --quiet
export KPR_BIN="$ROOT/target/release/kazoo-port-requests"

WORK=$(mktemp -d /tmp/kpr-bench.XXXXXX)
cleanup() { stop_started; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM
COUCH_PORT=$(free_port); SMTP_PORT=$(free_port); MAILWEB_PORT=$(free_port)
start_pouchdb "$WORK/couch" "$COUCH_PORT"
start_maildev "$SMTP_PORT" "$MAILWEB_PORT"
export COUCHDB_URL="http://127.0.0.1:$COUCH_PORT" SMTP_URL="smtp://127.0.0.1:$SMTP_PORT"
export MAILDEV_URL="http://127.0.0.1:$MAILWEB_PORT" QT_QPA_PLATFORM=offscreen
cargo bench --locked --bench service -- "$@"
