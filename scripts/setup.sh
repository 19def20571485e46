#!/usr/bin/env bash
# Bring up everything the ISP back office needs for local development and CI:
# system packages, PostgreSQL, Redis and the Python virtualenv.
#
# Idempotent: a second run installs nothing, starts nothing that is already
# running and needs no network. Everything it creates lives in .local/ and
# .venv/ inside the repository. The resolved connection URLs are written to
# .local/env (KEY=value lines) for later `make` steps to source.
#
# Usage:
#   scripts/setup.sh              full setup
#   scripts/setup.sh stop-local   stop a project-local postgres/redis (if running)
#
# Environment overrides:
#   DATABASE_URL         use this database instead of discovering one
#   REDIS_URL            use this Redis instead of discovering one
#   ISP_DB_NAME          database name for discovered servers (default: isp)
#   ISP_SKIP_APT=1       do not check/install apt packages
#   ISP_FORCE_LOCAL_PG=1 skip discovery and use the project-local cluster in
#                        .local/pg (mainly to exercise the fallback path)
#   ISP_LOCAL_PG_PORT    first port to try for the project-local cluster (5433)
#   ISP_LOCAL_DIR        where local state lives (default: <repo>/.local)
#
# The script can also be sourced (functions only, nothing runs).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="${ISP_LOCAL_DIR:-$ROOT/.local}"
VENV="$ROOT/.venv"
DB_NAME="${ISP_DB_NAME:-isp}"
export DEBIAN_FRONTEND=noninteractive

APT_PACKAGES=(
    postgresql postgresql-contrib redis-server python3-venv libpq-dev
    build-essential libsnmp-dev snmp snmpd
    freeradius freeradius-postgresql freeradius-utils
    # WeasyPrint runtime libraries; poppler-utils (pdftotext, pdftoppm) for the invoice PDF tests
    libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core poppler-utils
    # the browser tests drive Debian's Chromium through Playwright (no browser download)
    chromium
)

log() { printf 'setup: %s\n' "$*"; }
warn() { printf 'setup: WARNING: %s\n' "$*" >&2; }
die() {
    printf 'setup: ERROR: %s\n' "$*" >&2
    exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# Run a command as root (directly when we are root, else through sudo).
as_root() {
    if is_root; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $* (sudo not available)"
    fi
}

# Run a command as the `postgres` system user when we are root (PostgreSQL
# server binaries refuse to run as root); otherwise as ourselves.
as_pg_owner() {
    if is_root; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

can_be_root() { is_root || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1; }

# --------------------------------------------------------------------------
# apt packages
# --------------------------------------------------------------------------
ensure_apt_packages() {
    if [ "${ISP_SKIP_APT:-0}" = 1 ]; then
        log "apt: skipped (ISP_SKIP_APT=1)"
        return
    fi
    if ! command -v dpkg-query >/dev/null 2>&1; then
        warn "dpkg-query not found (not Debian?); install the equivalents of: ${APT_PACKAGES[*]}"
        return
    fi
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "apt: all ${#APT_PACKAGES[@]} packages present"
        return
    fi
    log "apt: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    # Debian's policy-rc.d usually keeps the services from auto-starting;
    # the steps below start what we need ourselves.
    log "apt: done"
}

# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------

# psql without ever prompting for a password.
psql_q() { PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-5}" psql -X -w -q "$@"; }

can_connect() { psql_q "$1" -tAc 'SELECT 1' >/dev/null 2>&1; }

# URL of the maintenance database ("postgres") on the same server/credentials.
admin_url() {
    local url="$1" base query=""
    base="${url%%\?*}"
    [ "$base" != "$url" ] && query="?${url#*\?}"
    printf '%s/postgres%s' "${base%/*}" "$query"
}

db_name_of() {
    local base="${1%%\?*}"
    printf '%s' "${base##*/}"
}

# Create the database named in the URL if it does not exist yet.
ensure_database() {
    local url="$1" db admin
    db="$(db_name_of "$url")"
    if can_connect "$url"; then
        log "postgres: database '$db' exists"
        return
    fi
    admin="$(admin_url "$url")"
    can_connect "$admin" || die "cannot connect to the server of $(redact "$url")"
    log "postgres: creating database '$db'"
    psql_q "$admin" -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db\"" >/dev/null
    can_connect "$url" || die "database '$db' still not reachable"
}

redact() { printf '%s' "$1" | sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#'; }

pg_bindir() {
    local ver="${1:-}"
    if [ -z "$ver" ]; then
        ver="$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null |
            sed -E 's#/usr/lib/postgresql/([^/]+)/bin/initdb#\1#' | sort -V | tail -n1)"
    fi
    [ -n "$ver" ] && [ -x "/usr/lib/postgresql/$ver/bin/initdb" ] ||
        die "no PostgreSQL server binaries under /usr/lib/postgresql (install postgresql)"
    printf '/usr/lib/postgresql/%s/bin' "$ver"
}

# Given a server on 127.0.0.1:<port>, print a URL we can log in with.
# Tries the `postgres` role without a password (trust auth); on a stock Debian
# cluster (scram over TCP) it creates a project role via the unix socket, as
# the postgres system user, with a password kept in .local/pg-password.
login_url_for_port() {
    local port="$1" url pw
    url="postgres://postgres@127.0.0.1:$port/$DB_NAME"
    if can_connect "$(admin_url "$url")"; then
        printf '%s' "$url"
        return 0
    fi
    mkdir -p "$LOCAL"
    if [ ! -s "$LOCAL/pg-password" ]; then
        (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=\n' >"$LOCAL/pg-password")
    fi
    pw="$(cat "$LOCAL/pg-password")"
    url="postgres://isp:$pw@127.0.0.1:$port/$DB_NAME"
    if can_connect "$(admin_url "$url")"; then
        printf '%s' "$url"
        return 0
    fi
    local run_pg=()
    if is_root; then
        run_pg=(runuser -u postgres --)
    elif can_be_root; then
        run_pg=(sudo -n -u postgres)
    else
        return 1
    fi
    log "postgres: creating role 'isp' on port $port (password in .local/pg-password)" >&2
    "${run_pg[@]}" psql -X -q -p "$port" -d postgres -v ON_ERROR_STOP=1 -v pw="$pw" >/dev/null 2>&1 <<'SQL' || return 1
SELECT format('CREATE ROLE isp LOGIN SUPERUSER PASSWORD %L', :'pw')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'isp') \gexec
SELECT format('ALTER ROLE isp LOGIN SUPERUSER PASSWORD %L', :'pw') \gexec
SQL
    can_connect "$(admin_url "$url")" || return 1
    printf '%s' "$url"
}

# Project-local cluster in .local/pg. Prints nothing; sets PG_URL.
local_pg_dir() { printf '%s/pg' "$LOCAL"; }

local_pg_running() {
    local dir bindir
    dir="$(local_pg_dir)"
    [ -f "$dir/PG_VERSION" ] || return 1
    bindir="$(pg_bindir "$(cat "$dir/PG_VERSION")")"
    as_pg_owner "$bindir/pg_ctl" -D "$dir" status >/dev/null 2>&1
}

start_local_pg() {
    local dir bindir port
    dir="$(local_pg_dir)"
    mkdir -p "$LOCAL"
    if [ ! -f "$dir/PG_VERSION" ]; then
        bindir="$(pg_bindir)"
        local first="${ISP_LOCAL_PG_PORT:-5433}"
        port="$first"
        while port_in_use "$port"; do
            port=$((port + 1))
            [ "$port" -lt $((first + 50)) ] || die "no free port for local postgres"
        done
        log "postgres: creating project-local cluster in .local/pg (port $port)"
        rm -rf "$dir"
        mkdir -p "$dir"
        if is_root; then
            id postgres >/dev/null 2>&1 || die "system user 'postgres' missing (install postgresql)"
            chown postgres:postgres "$dir"
            chmod 700 "$dir"
            runuser -u postgres -- test -w "$dir" ||
                die "user 'postgres' cannot reach $dir (a parent directory is not traversable); set DATABASE_URL instead"
        fi
        as_pg_owner "$bindir/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
        cat >>"$dir/postgresql.conf" <<EOF

# --- project-local development cluster (scripts/setup.sh) ---
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
EOF
    fi
    bindir="$(pg_bindir "$(cat "$dir/PG_VERSION")")"
    port="$(sed -nE 's/^port = ([0-9]+).*/\1/p' "$dir/postgresql.conf" | tail -n1)"
    [ -n "$port" ] || die "cannot read the port from $dir/postgresql.conf"
    if local_pg_running; then
        log "postgres: project-local cluster running on port $port"
    else
        log "postgres: starting project-local cluster on port $port"
        touch "$LOCAL/pg.log"
        if is_root; then chown postgres:postgres "$LOCAL/pg.log"; fi
        as_pg_owner "$bindir/pg_ctl" -D "$dir" -l "$LOCAL/pg.log" -w -t 60 start >/dev/null ||
            die "local postgres failed to start; see .local/pg.log"
    fi
    PG_URL="postgres://postgres@127.0.0.1:$port/$DB_NAME"
}

stop_local_pg() {
    local dir
    dir="$(local_pg_dir)"
    if local_pg_running; then
        log "postgres: stopping project-local cluster"
        as_pg_owner "$(pg_bindir "$(cat "$dir/PG_VERSION")")/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
    fi
}

# Start a Debian cluster (pg_lsclusters) if one exists. Prints its port when
# it then accepts connections.
start_debian_cluster() {
    command -v pg_lsclusters >/dev/null 2>&1 || return 1
    local ver name port _rest best=""
    while read -r ver name port _rest; do
        [ -n "$ver" ] || continue
        if [ -z "$best" ] || [ "$port" = 5432 ]; then best="$ver $name $port"; fi
    done < <(pg_lsclusters -h 2>/dev/null)
    [ -n "$best" ] || return 1
    read -r ver name port <<<"$best"
    if ! pg_isready -q -h 127.0.0.1 -p "$port"; then
        can_be_root || return 1
        log "postgres: starting Debian cluster $ver/$name (port $port)" >&2
        as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >/dev/null 2>&1 || true
        local _
        for _ in $(seq 1 20); do
            pg_isready -q -h 127.0.0.1 -p "$port" && break
            sleep 0.5
        done
    fi
    pg_isready -q -h 127.0.0.1 -p "$port" || return 1
    printf '%s' "$port"
}

resolve_postgres() {
    PG_URL=""
    if [ "${ISP_FORCE_LOCAL_PG:-0}" = 1 ]; then
        start_local_pg
    elif [ -n "${DATABASE_URL:-}" ]; then
        log "postgres: using DATABASE_URL from the environment"
        PG_URL="$DATABASE_URL"
    else
        local port=""
        if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
            port=5432
            log "postgres: server answering on 127.0.0.1:5432"
        elif port="$(start_debian_cluster)"; then
            log "postgres: Debian cluster answering on 127.0.0.1:$port"
        else
            port=""
        fi
        if [ -n "$port" ]; then
            if ! PG_URL="$(login_url_for_port "$port")"; then
                warn "cannot log in to the server on port $port; falling back to a project-local cluster"
                PG_URL=""
            fi
        fi
        [ -n "$PG_URL" ] || start_local_pg
    fi
    ensure_database "$PG_URL"
}

# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------
redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; }

resolve_redis() {
    if [ -n "${REDIS_URL:-}" ]; then
        log "redis: using REDIS_URL from the environment"
        RD_URL="$REDIS_URL"
        return
    fi
    if redis_ping 6379; then
        log "redis: answering on 127.0.0.1:6379"
        RD_URL="redis://127.0.0.1:6379/0"
        return
    fi
    if redis_ping 6380; then
        log "redis: answering on 127.0.0.1:6380"
    else
        command -v redis-server >/dev/null 2>&1 || die "redis-server not installed"
        log "redis: starting project-local redis on 127.0.0.1:6380"
        mkdir -p "$LOCAL"
        redis-server --daemonize yes --bind 127.0.0.1 --port 6380 --save "" --appendonly no \
            --dir "$LOCAL" --logfile "$LOCAL/redis.log" --pidfile "$LOCAL/redis.pid" >/dev/null
        local _
        for _ in $(seq 1 20); do
            redis_ping 6380 && break
            sleep 0.25
        done
        redis_ping 6380 || die "redis failed to start; see .local/redis.log"
    fi
    RD_URL="redis://127.0.0.1:6380/0"
}

stop_local_redis() {
    local pid
    [ -f "$LOCAL/redis.pid" ] || return 0
    pid="$(cat "$LOCAL/redis.pid")"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q redis "/proc/$pid/comm" 2>/dev/null; then
        log "redis: stopping project-local redis (pid $pid)"
        redis-cli -h 127.0.0.1 -p 6380 shutdown nosave >/dev/null 2>&1 || kill "$pid"
    fi
    rm -f "$LOCAL/redis.pid"
}

# --------------------------------------------------------------------------
# .local/env
# --------------------------------------------------------------------------
# KEY=value line readable both by bash (`set -a; . .local/env`) and by
# django-environ's read_env: bare when safe, else in single quotes.
env_line() {
    local key="$1" val="$2"
    if [[ "$val" =~ ^[A-Za-z0-9_./:@%+,~-]*$ ]]; then
        printf '%s=%s\n' "$key" "$val"
    elif [[ "$val" != *"'"* ]]; then
        printf "%s='%s'\n" "$key" "$val"
    else
        die "$key contains a single quote; cannot write it to .local/env"
    fi
}

# A secret generated once per checkout and kept in .local/ (never committed). An explicit
# DJANGO_SECRET_KEY in the environment wins and is not written anywhere.
ensure_local_secret() {
    mkdir -p "$LOCAL"
    if [ ! -s "$LOCAL/secret_key" ]; then
        (umask 077 && head -c 48 /dev/urandom | base64 | tr -d '\n/+=' >"$LOCAL/secret_key")
        log "secret: generated .local/secret_key"
    fi
    # PII key ring (newest first) and blind-index key; rotate with `manage.py pii_rotate_keys`.
    if [ ! -s "$LOCAL/pii_keys" ]; then
        (umask 077 && printf 'k1:%s' "$(head -c 32 /dev/urandom | base64 | tr -d '\n')" >"$LOCAL/pii_keys")
        log "secret: generated .local/pii_keys"
    fi
    if [ ! -s "$LOCAL/pii_index_key" ]; then
        (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '\n' >"$LOCAL/pii_index_key")
        log "secret: generated .local/pii_index_key"
    fi
}

write_env() {
    mkdir -p "$LOCAL"
    ensure_local_secret
    local tmp="$LOCAL/env.tmp"
    {
        echo "# Written by scripts/setup.sh; regenerated on every run."
        env_line DATABASE_URL "$PG_URL"
        env_line REDIS_URL "$RD_URL"
        if [ -z "${DJANGO_SECRET_KEY:-}" ]; then
            env_line DJANGO_SECRET_KEY "$(cat "$LOCAL/secret_key")"
        fi
        if [ -z "${PII_KEYS:-}" ]; then
            env_line PII_KEYS "$(cat "$LOCAL/pii_keys")"
        fi
        if [ -z "${PII_INDEX_KEY:-}" ]; then
            env_line PII_INDEX_KEY "$(cat "$LOCAL/pii_index_key")"
        fi
    } >"$tmp"
    chmod 600 "$tmp"
    if [ -f "$LOCAL/env" ] && cmp -s "$tmp" "$LOCAL/env"; then
        rm -f "$tmp"
        log "env: .local/env unchanged"
    else
        mv "$tmp" "$LOCAL/env"
        log "env: wrote .local/env (DATABASE_URL=$(redact "$PG_URL"), REDIS_URL=$RD_URL)"
    fi
}

# --------------------------------------------------------------------------
# Python virtualenv
# --------------------------------------------------------------------------
requirements_hash() {
    (
        cd "$ROOT"
        "$VENV/bin/python" -c 'import sys; print(sys.version)'
        sha256sum requirements*.txt
    ) | sha256sum | cut -d' ' -f1
}

ensure_python() {
    local boot
    if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        boot="$(command -v python3.11 || command -v python3 || true)"
        [ -n "$boot" ] || die "python3.11 / python3 not found"
        log "python: creating .venv with $("$boot" -c 'import sys; print("Python %d.%d.%d" % sys.version_info[:3])')"
        "$boot" -m venv --clear "$VENV"
    fi
    [ -f "$ROOT/requirements-dev.txt" ] || die "requirements-dev.txt not found in $ROOT"
    local want have=""
    want="$(requirements_hash)"
    [ -f "$VENV/.requirements.sha256" ] && have="$(cat "$VENV/.requirements.sha256")"
    if [ "$want" = "$have" ]; then
        log "python: requirements up to date"
        return
    fi
    log "python: pip install -r requirements-dev.txt"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements-dev.txt"
    echo "$want" >"$VENV/.requirements.sha256"
    log "python: done"
}

# --------------------------------------------------------------------------
main() {
    cd "$ROOT"
    case "${1:-all}" in
    all)
        ensure_apt_packages
        resolve_postgres
        resolve_redis
        write_env
        ensure_python
        log "ready"
        ;;
    stop-local)
        stop_local_pg
        stop_local_redis
        ;;
    *) die "unknown command: $1 (expected: stop-local or nothing)" ;;
    esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
