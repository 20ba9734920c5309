#!/usr/bin/env bash
# Runs every test: fresh PouchDB Server and MailDev on free ports, then `cargo test`.
# Extra arguments go to cargo test (e.g. scripts/test.sh lifecycle -- --nocapture).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_system_packages
ensure_node_packages

WORK=$(mktemp -d /tmp/kpr-test.XXXXXX)
cleanup() { stop_started; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

COUCH_PORT=$(free_port); SMTP_PORT=$(free_port); MAILWEB_PORT=$(free_port)
start_pouchdb "$WORK/couch" "$COUCH_PORT"
start_maildev "$SMTP_PORT" "$MAILWEB_PORT"

export COUCHDB_URL="http://127.0.0.1:$COUCH_PORT"
export SMTP_URL="smtp://127.0.0.1:$SMTP_PORT"
export MAILDEV_URL="http://127.0.0.1:$MAILWEB_PORT"
export POUCHDB_SERVER_BIN="$DEVSTACK/node_modules/.bin/pouchdb-server"
export MAILDEV_BIN="$DEVSTACK/node_modules/.bin/maildev"
export QT_QPA_PLATFORM=offscreen
export LOG="${LOG:-warn}"

log "CouchDB-compatible server on $COUCHDB_URL, MailDev on $MAILDEV_URL"
cargo test --locked "$@"
