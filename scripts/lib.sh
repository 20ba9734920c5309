# Shared by scripts/dev.sh, scripts/test.sh and scripts/bench.sh: install what is missing,
# start the local CouchDB (Apache CouchDB 3.4.3 from ../shared/couchdb when it is there,
# PouchDB Server otherwise) and the mail sink (MailDev), stop them again.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEVSTACK="$ROOT/scripts/devstack"
# the prebuilt Apache CouchDB beside the project (read-only; its scripts write only into the
# folder they are given)
COUCHDB_DIST=${COUCHDB_DIST:-$(cd "$ROOT/.." && pwd)/shared/couchdb}
STARTED_PIDS=()
STARTED_COUCH_DIRS=()

have_couchdb() { [ -x "$COUCHDB_DIST/start-node.sh" ] && [ -z "${USE_POUCHDB:-}" ]; }

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; return 1; fi
}

RABBITMQ_SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server

# Debian packages the service and its tests use: wkhtmltopdf (LOA), pdftotext (tests read
# PDFs), RabbitMQ (Kazoo's bus), and what the Rust build links against.
ensure_system_packages() {
  local missing=()
  command -v wkhtmltopdf >/dev/null || missing+=(wkhtmltopdf)
  command -v pdftotext >/dev/null || missing+=(poppler-utils)
  pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev pkg-config)
  fc-list 2>/dev/null | grep -qi dejavu || missing+=(fonts-dejavu-core)
  # the customer page's browser test
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x "$RABBITMQ_SERVER" ] || missing+=(rabbitmq-server)
  if have_couchdb; then
    # what the prebuilt CouchDB links against, beyond a minimal system
    [ -e /usr/lib/x86_64-linux-gnu/libicuuc.so.72 ] || missing+=(libicu72)
    [ -e /usr/lib/x86_64-linux-gnu/libssl.so.3 ] || missing+=(libssl3)
    command -v flock >/dev/null || missing+=(util-linux)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# PouchDB Server and MailDev, exactly as pinned by scripts/devstack/package-lock.json.
ensure_node_packages() {
  local stamp="$DEVSTACK/node_modules/.lock-stamp"
  if [ ! -f "$stamp" ] || ! cmp -s "$DEVSTACK/package-lock.json" "$stamp"; then
    log "installing PouchDB Server and MailDev (npm ci)"
    (cd "$DEVSTACK" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$DEVSTACK/package-lock.json" "$stamp"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # url, what
  local i
  for i in $(seq 1 150); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  log "$2 did not come up at $1"; return 1
}

# start_pouchdb DIR PORT: data kept in DIR.
start_pouchdb() {
  mkdir -p "$1"
  (cd "$1" && exec "$DEVSTACK/pouchdb-server" --host 127.0.0.1 --port "$2" \
      --dir "$1" --config "$1/config.json" -n >"$1/pouchdb.log" 2>&1) &
  STARTED_PIDS+=($!)
  wait_http "http://127.0.0.1:$2/" "PouchDB Server"
}

# start_maildev SMTP_PORT WEB_PORT [MAIL_DIR]
start_maildev() {
  local args=(--smtp "$1" --web "$2" --ip 127.0.0.1 --web-ip 127.0.0.1 --silent)
  [ -n "${3:-}" ] && mkdir -p "$3" && args+=(--mail-directory "$3")
  "$DEVSTACK/node_modules/.bin/maildev" "${args[@]}" >/dev/null 2>&1 &
  STARTED_PIDS+=($!)
  wait_http "http://127.0.0.1:$2/email" "MailDev"
}

# start_rabbitmq DIR: a private RabbitMQ node on free ports, its data and logs in DIR (Debian's
# server, as root); sets RABBITMQ_STARTED_URL. About 8 s.
start_rabbitmq() {
  local dir=$1 port dist i
  port=$(free_port); dist=$(free_port)
  mkdir -p "$dir/mnesia" "$dir/log" "$dir/home"
  echo "[]." >"$dir/enabled_plugins"
  (
    export RABBITMQ_NODENAME="kpr$port@localhost" RABBITMQ_NODE_PORT="$port" RABBITMQ_DIST_PORT="$dist" \
      RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" \
      RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" RABBITMQ_FEATURE_FLAGS_FILE="$dir/feature_flags" \
      HOME="$dir/home"
    exec "$RABBITMQ_SERVER" >"$dir/server.log" 2>&1
  ) &
  STARTED_PIDS+=($!)
  for i in $(seq 1 300); do
    if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      RABBITMQ_STARTED_URL="amqp://guest:guest@127.0.0.1:$port/%2f"
      return 0
    fi
    sleep 0.1
  done
  log "RabbitMQ did not start: $(tail -3 "$dir/server.log")"; return 1
}

# start_couchdb DIR [cluster]: a CouchDB node (or a 3-node cluster) with its data in DIR; sets
# COUCH_STARTED_URL to its URL (a cluster: every node's URL, comma-separated).
start_couchdb() {
  local out
  if [ "${2:-}" = cluster ]; then
    out=$("$COUCHDB_DIST/start-cluster.sh" "$1" </dev/null) || return 1
  else
    out=$("$COUCHDB_DIST/start-node.sh" "$1" </dev/null) || return 1
  fi
  STARTED_COUCH_DIRS+=("$1")
  COUCH_STARTED_URL=$(tr '\n' ',' <<<"$out" | sed 's/,*$//')
}

stop_started() {
  local pid dir
  for pid in "${STARTED_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${STARTED_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for dir in "${STARTED_COUCH_DIRS[@]}"; do "$COUCHDB_DIST/stop.sh" "$dir" >/dev/null 2>&1 || true; done
  STARTED_PIDS=()
  STARTED_COUCH_DIRS=()
}

# start_fresh_stack NAME: a fresh CouchDB (Apache CouchDB when ../shared/couchdb is there,
# PouchDB Server otherwise, or the one named by TEST_COUCHDB_URL) and MailDev on free ports, data
# in a temporary directory removed at exit, and a RabbitMQ node (or the one TEST_AMQP_URL
# names); exports COUCHDB_URL, SMTP_URL, MAILDEV_URL, KPR_AMQP_URL, COUCHDB_KIND and what the
# tests start on their own.
start_fresh_stack() {
  WORK=$(mktemp -d "/tmp/kpr-$1.XXXXXX")
  trap 'stop_started; rm -rf "$WORK"' EXIT
  trap 'exit 130' INT TERM
  local smtp_port web_port
  smtp_port=$(free_port); web_port=$(free_port)
  if [ -n "${TEST_COUCHDB_URL:-}" ]; then
    export COUCHDB_URL="$TEST_COUCHDB_URL" COUCHDB_KIND="given"
  elif have_couchdb; then
    start_couchdb "$WORK/couch"
    export COUCHDB_URL="$COUCH_STARTED_URL" COUCHDB_KIND="Apache CouchDB 3.4.3 (single node)"
    export KPR_COUCHDB_DIST="$COUCHDB_DIST"
  else
    local couch_port
    couch_port=$(free_port)
    start_pouchdb "$WORK/couch" "$couch_port"
    export COUCHDB_URL="http://127.0.0.1:$couch_port" COUCHDB_KIND="PouchDB Server"
  fi
  start_maildev "$smtp_port" "$web_port"
  if [ -n "${TEST_AMQP_URL:-}" ]; then
    export KPR_AMQP_URL="$TEST_AMQP_URL"
  else
    start_rabbitmq "$WORK/rabbitmq"
    export KPR_AMQP_URL="$RABBITMQ_STARTED_URL"
  fi
  export RABBITMQ_SERVER_BIN="$RABBITMQ_SERVER"
  export SMTP_URL="smtp://127.0.0.1:$smtp_port"
  export MAILDEV_URL="http://127.0.0.1:$web_port"
  export POUCHDB_SERVER_BIN="$DEVSTACK/pouchdb-server"
  export MAILDEV_BIN="$DEVSTACK/node_modules/.bin/maildev"
  export QT_QPA_PLATFORM=offscreen
}
