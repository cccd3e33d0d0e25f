#!/usr/bin/env bash
# Run a throw-away PostgreSQL cluster on loopback for runledger's tests.
# See docs/testing.md.
#
# Usage:
#   scripts/postgres.sh install       apt-get install postgresql when no initdb exists (idempotent)
#   scripts/postgres.sh start DIR     initdb a FRESH cluster for DIR, start it; prints the SQLAlchemy URL
#                                     postgresql+asyncpg://runledger@127.0.0.1:<port>/runledger
#   scripts/postgres.sh stop DIR      pg_ctl stop -m fast; idempotent
#   scripts/postgres.sh restart DIR   pg_ctl restart -m fast: same cluster, data and port (fault tests)
#   scripts/postgres.sh status DIR    exit 0 (and print the URL) if running, else 1
#
# Files in DIR: url, port, pgdata (path of the cluster), postgres.log, and normally
# data/ (the cluster itself, unix socket included).
#
# Running as root: initdb/postgres refuse root, so the cluster belongs to the
# system user runledger-pg (created on first use) and the server tools run via
# runuser. That user must be able to traverse DIR's parents; pytest's
# /tmp/pytest-of-root is mode 0700, so when it cannot (or when the unix socket
# path would exceed 107 bytes) the cluster is created in a private
# /tmp/runledger-pg.XXXXXX directory instead, recorded in DIR/pgdata and deleted
# by `stop` (every `start` makes a fresh cluster anyway).
# Running as a normal user: everything runs as that user, in DIR/data.
#
# The database superuser is `runledger` (trust auth on loopback and the socket),
# the database `runledger`. fsync stays on.
#
# Environment:
#   PG_BINDIR           directory with initdb/pg_ctl (default: newest /usr/lib/postgresql/*/bin)
#   RUNLEDGER_PG_USER   OS user owning the cluster when run as root (default runledger-pg)
#   PG_START_TIMEOUT    seconds for pg_ctl -w (default 60)
set -euo pipefail

PG_OS_USER="${RUNLEDGER_PG_USER:-runledger-pg}"
DB_USER="runledger"
DB_NAME="runledger"
START_TIMEOUT="${PG_START_TIMEOUT:-60}"

log() { echo "postgres.sh: $*" >&2; }
die() { echo "postgres.sh: ERROR: $*" >&2; exit 1; }

find_bindir() {
    if [[ -n "${PG_BINDIR:-}" ]]; then
        [[ -x "$PG_BINDIR/initdb" ]] && { echo "$PG_BINDIR"; return 0; }
        return 1
    fi
    local d best="" bestv=0 v
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x "$d/initdb" ]] || continue
        v="$(basename "$(dirname "$d")")"
        if [[ "$v" =~ ^[0-9]+$ ]] && ((v > bestv)); then best="$d"; bestv="$v"; fi
    done
    if [[ -z "$best" ]] && command -v initdb >/dev/null; then
        best="$(dirname "$(command -v initdb)")"
    fi
    [[ -n "$best" ]] || return 1
    echo "$best"
}

cmd_install() {
    if find_bindir >/dev/null; then
        return 0
    fi
    [[ $EUID -eq 0 ]] || die "no initdb found and not root: install PostgreSQL (apt-get install -y postgresql)"
    log "no initdb found: installing PostgreSQL with apt-get"
    # Ask Debian's postgresql-common not to create (and start) a default 'main'
    # cluster on port 5432; we only ever run our own throw-away clusters.
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/runledger-no-main.conf
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends postgresql >&2
    # Belt and braces: if a cluster got created and started anyway, stop it.
    if command -v pg_lsclusters >/dev/null; then
        pg_lsclusters -h 2>/dev/null | while read -r ver name _port status _rest; do
            if [[ "$status" == online* ]]; then
                log "stopping the cluster $ver/$name that the package started"
                pg_ctlcluster "$ver" "$name" stop >&2 || true
            fi
        done
    fi
    find_bindir >/dev/null || die "apt-get install postgresql did not provide initdb"
}

# Run a server-side PostgreSQL tool as the cluster owner.
as_owner() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u "$PG_OS_USER" -- "$@")
    else
        "$@"
    fi
}

ensure_os_user() {
    [[ $EUID -eq 0 ]] || return 0
    id -u "$PG_OS_USER" >/dev/null 2>&1 && return 0
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$PG_OS_USER" 2>/dev/null ||
        id -u "$PG_OS_USER" >/dev/null 2>&1 || # lost a race with a concurrent start
        die "could not create system user $PG_OS_USER"
}

abs_dir() {
    mkdir -p "$1"
    (cd "$1" && pwd)
}

free_port() {
    python3 -c '
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

pgdata_of() { # the cluster directory recorded for DIR, or ""
    [[ -f "$1/pgdata" ]] && cat "$1/pgdata" || true
}

# Is the postmaster of PGDATA alive? (root can read postmaster.pid wherever it is)
postmaster_pid() { # postmaster_pid PGDATA
    local pgdata="$1" pid
    [[ -n "$pgdata" && -f "$pgdata/postmaster.pid" ]] || return 0
    pid="$(head -n1 "$pgdata/postmaster.pid" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    [[ -r "/proc/$pid/stat" && "$(awk '{print $3}' "/proc/$pid/stat")" != "Z" ]] || return 0
    # Guard against pid reuse after a crash: it must be a postgres process.
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q postgres; then
        echo "$pid"
    fi
}

cmd_start() {
    [[ $# -eq 1 ]] || die "usage: postgres.sh start DIR"
    local dir bindir pgdata port attempt ok url log_offset
    dir="$(abs_dir "$1")"
    if [[ -n "$(postmaster_pid "$(pgdata_of "$dir")")" ]]; then
        die "a cluster is already running for $dir ($(cat "$dir/url" 2>/dev/null))"
    fi
    cmd_install
    bindir="$(find_bindir)"
    command -v python3 >/dev/null || die "python3 not found"
    ensure_os_user
    remove_cluster "$dir" # fresh cluster every start
    rm -f "$dir/url" "$dir/port"

    pgdata="$dir/data"
    if [[ $EUID -eq 0 ]]; then
        # The cluster owner must reach DIR, and the socket path must fit in sun_path.
        if ! runuser -u "$PG_OS_USER" -- test -x "$dir" 2>/dev/null ||
            ((${#pgdata} + 17 > 107)); then
            pgdata="$(mktemp -d /tmp/runledger-pg.XXXXXX)"
            log "cluster for $dir lives in $pgdata ($PG_OS_USER cannot reach $dir)"
        fi
        mkdir -p "$pgdata"
        chown "$PG_OS_USER:" "$pgdata"
        chmod 700 "$pgdata"
    else
        ((${#pgdata} + 17 <= 107)) || pgdata="$(mktemp -d /tmp/runledger-pg.XXXXXX)"
        mkdir -p "$pgdata"
        chmod 700 "$pgdata"
    fi
    echo "$pgdata" >"$dir/pgdata"

    if ! as_owner "$bindir/initdb" -D "$pgdata" -U "$DB_USER" -E UTF8 --locale=C \
        --auth-local=trust --auth-host=trust --no-instructions >"$dir/initdb.log" 2>&1; then
        tail -n 20 "$dir/initdb.log" >&2
        die "initdb failed (full log: $dir/initdb.log)"
    fi

    ok=0
    for attempt in 1 2 3; do
        port="$(free_port)"
        # Our settings live in an include file appended to postgresql.conf.
        as_owner tee "$pgdata/runledger.conf" >/dev/null <<EOF
# Written by scripts/postgres.sh
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$pgdata'
fsync = on
max_connections = 200
log_min_messages = warning
log_line_prefix = '%m [%p] '
EOF
        grep -q "^include 'runledger.conf'" "$pgdata/postgresql.conf" ||
            echo "include 'runledger.conf'" | as_owner tee -a "$pgdata/postgresql.conf" >/dev/null
        # No -l: the server's output goes to pg_ctl's stdout, which this (root)
        # shell opened on DIR/postgres.log, so the log stays in DIR even when the
        # cluster owner cannot reach DIR.
        touch "$dir/postgres.log"
        log_offset="$(stat -c %s "$dir/postgres.log")"
        if as_owner "$bindir/pg_ctl" start -D "$pgdata" -w -t "$START_TIMEOUT" \
            </dev/null >>"$dir/postgres.log" 2>&1; then
            ok=1
            break
        fi
        if tail -c "+$((log_offset + 1))" "$dir/postgres.log" | grep -q "could not bind" && [[ -z "$(postmaster_pid "$pgdata")" ]]; then
            log "port $port was taken (attempt $attempt), retrying"
            continue
        fi
        break
    done
    if [[ $ok -ne 1 ]]; then
        echo "----- tail of $dir/postgres.log -----" >&2
        tail -n 30 "$dir/postgres.log" >&2
        stop_cluster "$dir" >/dev/null 2>&1 || true
        die "PostgreSQL did not start (full log: $dir/postgres.log)"
    fi

    if ! "$bindir/psql" -X -q -h 127.0.0.1 -p "$port" -U "$DB_USER" -d postgres -v ON_ERROR_STOP=1 \
        -c "CREATE DATABASE $DB_NAME" >>"$dir/postgres.log" 2>&1; then
        tail -n 10 "$dir/postgres.log" >&2
        stop_cluster "$dir" >/dev/null 2>&1 || true
        die "CREATE DATABASE $DB_NAME failed"
    fi
    url="postgresql+asyncpg://$DB_USER@127.0.0.1:$port/$DB_NAME"
    echo "$port" >"$dir/port"
    echo "$url" >"$dir/url"
    echo "$url"
}

stop_cluster() { # stop_cluster DIR
    local dir="$1" pgdata bindir pid i
    pgdata="$(pgdata_of "$dir")"
    pid="$(postmaster_pid "$pgdata")"
    [[ -n "$pid" ]] || return 0
    bindir="$(find_bindir)" || bindir=""
    if [[ -n "$bindir" ]] && as_owner "$bindir/pg_ctl" stop -D "$pgdata" -m fast -w -t 30 >>"$dir/postgres.log" 2>&1; then
        return 0
    fi
    # pg_ctl could not do it (e.g. the owner lost access to the path): fast
    # shutdown is SIGINT to the postmaster; then SIGQUIT (immediate), SIGKILL.
    kill -INT "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do
        [[ -n "$(postmaster_pid "$pgdata")" ]] || return 0
        ((i == 100)) && kill -QUIT "$pid" 2>/dev/null
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
}

# Stop the cluster and delete it when it lives outside DIR (relocated), else DIR/data.
remove_cluster() { # remove_cluster DIR
    local dir="$1" pgdata
    stop_cluster "$dir"
    pgdata="$(pgdata_of "$dir")"
    if [[ -n "$pgdata" && "$pgdata" == /tmp/runledger-pg.* ]]; then
        rm -rf "$pgdata"
    fi
    rm -rf "$dir/data" "$dir/pgdata"
}

cmd_stop() {
    [[ $# -eq 1 ]] || die "usage: postgres.sh stop DIR"
    [[ -d "$1" ]] || return 0
    local dir pgdata
    dir="$(abs_dir "$1")"
    stop_cluster "$dir"
    pgdata="$(pgdata_of "$dir")"
    # A relocated cluster is scratch space outside DIR: do not leak it.
    if [[ -n "$pgdata" && "$pgdata" == /tmp/runledger-pg.* ]]; then
        rm -rf "$pgdata"
        rm -f "$dir/pgdata"
    fi
}

cmd_restart() { # same cluster, same port: every connection is dropped (fault tests)
    [[ $# -eq 1 ]] || die "usage: postgres.sh restart DIR"
    local dir pgdata bindir
    dir="$(abs_dir "$1")"
    pgdata="$(pgdata_of "$dir")"
    [[ -n "$(postmaster_pid "$pgdata")" ]] || die "no cluster is running for $dir"
    bindir="$(find_bindir)"
    as_owner "$bindir/pg_ctl" restart -D "$pgdata" -m fast -w -t "$START_TIMEOUT" </dev/null >>"$dir/postgres.log" 2>&1 ||
        die "pg_ctl restart failed (log: $dir/postgres.log)"
    cat "$dir/url"
}

cmd_status() {
    [[ $# -eq 1 ]] || die "usage: postgres.sh status DIR"
    [[ -d "$1" ]] || return 1
    local dir
    dir="$(abs_dir "$1")"
    [[ -n "$(postmaster_pid "$(pgdata_of "$dir")")" ]] || return 1
    cat "$dir/url" 2>/dev/null || true
}

main() {
    local sub="${1:-}"
    shift || true
    case "$sub" in
        install) cmd_install "$@" ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        restart) cmd_restart "$@" ;;
        status) cmd_status "$@" ;;
        *) die "usage: postgres.sh {install|start DIR|stop DIR|restart DIR|status DIR}" ;;
    esac
}

main "$@"
