#!/usr/bin/env bash
# Starts everything a newcomer needs: a CouchDB (Apache CouchDB 3.4.3 from ../shared/couchdb when
# it is there, PouchDB Server otherwise; data in .devdata/), MailDev (mail in .devdata/mail), a
# RabbitMQ node as Kazoo's bus (unless AMQP_URL names one, or DEV_AMQP=false), the demo
# accounts and keys, and the service on http://127.0.0.1:8000. Ctrl-C stops all of it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

COUCH_PORT=${DEV_COUCH_PORT:-5984}
SMTP_PORT=${DEV_SMTP_PORT:-1025}
MAILWEB_PORT=${DEV_MAILDEV_PORT:-1080}
export LISTEN_ADDR=${LISTEN_ADDR:-127.0.0.1:8000}
export SMTP_URL="smtp://127.0.0.1:$SMTP_PORT"
export QT_QPA_PLATFORM=offscreen

ensure_system_packages
ensure_node_packages
log "building the service"
cargo build --release --locked --quiet
BIN="$ROOT/target/release/kazoo-port-requests"

trap 'stop_started; log "stopped"' EXIT
trap 'exit 130' INT TERM
if have_couchdb; then
  start_couchdb "$ROOT/.devdata/couchdb"
  export COUCHDB_URL="$COUCH_STARTED_URL"
  SERVER="Apache CouchDB 3.4.3 (data in .devdata/couchdb)"
else
  start_pouchdb "$ROOT/.devdata/couch" "$COUCH_PORT"
  export COUCHDB_URL="http://127.0.0.1:$COUCH_PORT"
  SERVER="PouchDB Server (data in .devdata/couch; no ../shared/couchdb here)"
fi
start_maildev "$SMTP_PORT" "$MAILWEB_PORT" "$ROOT/.devdata/mail"
BUS="off (DEV_AMQP=false)"
if [ -n "${AMQP_URL:-}" ]; then
  BUS="the broker AMQP_URL names"
elif [ "${DEV_AMQP:-true}" != false ]; then
  start_rabbitmq "$ROOT/.devdata/rabbitmq"
  export AMQP_URL="$RABBITMQ_STARTED_URL"
  BUS="${AMQP_URL/\/\/*@/\/\/}   RabbitMQ (data in .devdata/rabbitmq), exchange notifications"
fi

DEMO=$("$BIN" bootstrap --demo)
MASTER=$(sed -n 's/^master_account_id=//p' <<<"$DEMO")
TOKEN=$(sed -n 's/^token=//p' <<<"$DEMO")

"$BIN" serve &
STARTED_PIDS+=($!)
wait_http "http://$LISTEN_ADDR/healthz" "kazoo-port-requests"

cat <<INFO

  kazoo-port-requests is running on http://$LISTEN_ADDR
  CouchDB:                   ${COUCHDB_URL/\/\/*@/\/\/}   $SERVER
  MailDev (mail sink):       http://127.0.0.1:$MAILWEB_PORT
  Kazoo's bus:               $BUS
  Master account id:         $MASTER
  Token (24 h):              $TOKEN

  Try:
  curl -s -H "X-Auth-Token: $TOKEN" http://$LISTEN_ADDR/v2/accounts/$MASTER/port_requests

  Ctrl-C stops everything.
INFO
wait
