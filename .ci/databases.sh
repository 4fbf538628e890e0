#!/usr/bin/env bash
# Provide PostgreSQL and MariaDB servers on 127.0.0.1 for the test suite: install
# them from Debian's packages when missing, start them without systemd, and create
# the user `qhana` (password `qhana`) with a database `qhana_tasks_test` on each.
# Prints the SQLAlchemy URIs that the tests read; when sourced, also exports them.
#
# Usage, as root on Debian:
#   bash .ci/databases.sh     # start the servers, print the URIs
#   . .ci/databases.sh        # the same, then export the URIs into this shell
#
# The work always runs in a child bash process with `set -Eeuo pipefail`, so
# sourcing the script changes nothing in the caller's shell options. It returns
# non-zero when a server cannot be provided: a caller running with `set -e` stops
# there, any other caller must check the status itself.
#
# Running it again is cheap: installed packages, running servers, the user and the
# database are all reused. Server logs:
#   /var/log/postgresql/postgresql-<version>-main.log
#   /var/log/mysql/mariadbd-ci.log

QHANA_TASKS_TEST_POSTGRES_URI="postgresql+psycopg://qhana:qhana@127.0.0.1:5432/qhana_tasks_test"
QHANA_TASKS_TEST_MARIADB_URI="mysql+pymysql://qhana:qhana@127.0.0.1:3306/qhana_tasks_test?charset=utf8mb4"

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    if ! bash "${BASH_SOURCE[0]}"; then
        unset QHANA_TASKS_TEST_POSTGRES_URI QHANA_TASKS_TEST_MARIADB_URI
        return 1
    fi

    export QHANA_TASKS_TEST_POSTGRES_URI QHANA_TASKS_TEST_MARIADB_URI
    return 0
fi

set -Eeuo pipefail

# Any command that stops the script without a message of its own still says so.
trap 'say "ERROR: line $LINENO: \"$BASH_COMMAND\" failed with status $?."' ERR

# Progress goes to stderr so that stdout carries nothing but the two URIs.
say() {
    printf '[databases] %s\n' "$*" >&2
}

die() {
    say "ERROR: $*"
    exit 1
}

# Report a server that did not come up, with the end of its log, and stop.
fail_with_log() {
    local name=$1 log=$2

    say "ERROR: $name did not come up; last lines of $log:"
    tail -n 40 "$log" >&2 2>/dev/null || say "(no log at $log)"
    exit 1
}

# Poll a command until it succeeds, for at most WAIT_SECONDS. A server process id
# other than "-" is watched too, so that a crashed server fails at once.
WAIT_SECONDS=60

wait_for() {
    local name=$1 log=$2 pid=$3
    shift 3
    local deadline=$((SECONDS + WAIT_SECONDS))

    until "$@" >/dev/null 2>&1; do
        if [[ $pid != - ]] && ! kill -0 "$pid" 2>/dev/null; then
            fail_with_log "$name (process $pid exited)" "$log"
        fi

        if ((SECONDS >= deadline)); then
            fail_with_log "$name (no answer after ${WAIT_SECONDS}s)" "$log"
        fi

        sleep 1
    done
}

# Write a configuration file unless it already holds exactly this text; succeed
# only when it was written, so that the caller knows to restart the server.
write_config() {
    local file=$1 text=$2

    if [[ "$(cat "$file" 2>/dev/null)" == "$text" ]]; then
        return 1
    fi

    printf '%s\n' "$text" >"$file"
}

[[ $EUID -eq 0 ]] || die "run this script as root; it installs and starts system services."

# A known UTF-8 locale, whatever the caller has: a PostgreSQL cluster that the
# package creates on installation takes its encoding from the environment.
export LANG=C.UTF-8 LC_ALL=C.UTF-8

# Client tools may warn when the working directory is unreadable for the
# postgres user; nothing below uses relative paths.
cd /

# --- Packages --------------------------------------------------------------------

packages=(postgresql postgresql-client mariadb-server mariadb-client)
missing=()

for package in "${packages[@]}"; do
    if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null)" != installed ]]; then
        missing+=("$package")
    fi
done

if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# --- PostgreSQL ------------------------------------------------------------------

# The newest server version installed, e.g. 15 on Debian 12.
pg_version=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null \
    | awk -F/ '{print $5}' | sort -V | tail -n 1) || true
[[ -n $pg_version ]] || die "no PostgreSQL server found under /usr/lib/postgresql."

pg_log=/var/log/postgresql/postgresql-$pg_version-main.log

if [[ ! -f /etc/postgresql/$pg_version/main/postgresql.conf ]]; then
    say "creating PostgreSQL $pg_version cluster 'main'"
    pg_createcluster --locale=C.UTF-8 --port=5432 "$pg_version" main >&2
fi

# Listen on loopback only, on the standard port. listen_addresses goes in a
# drop-in file because pg_conftool writes an IP address unquoted, which the
# server rejects; the port stays in postgresql.conf, where Debian's tools read it.
pg_config_changed=false

if write_config "/etc/postgresql/$pg_version/main/conf.d/qhana-tasks-ci.conf" \
    "# Written by .ci/databases.sh of flask-qhana-tasks.
listen_addresses = '127.0.0.1'"; then
    pg_config_changed=true
fi

if [[ "$(pg_conftool -s "$pg_version" main show port 2>/dev/null)" != 5432 ]]; then
    pg_conftool "$pg_version" main set port 5432
    pg_config_changed=true
fi

# Without systemd, pg_ctlcluster starts the server itself through pg_ctl, which
# waits for it and logs to $pg_log.
if pg_ctlcluster "$pg_version" main status >/dev/null 2>&1; then
    if $pg_config_changed; then
        say "restarting PostgreSQL $pg_version to apply its new settings"
        pg_ctlcluster "$pg_version" main restart || fail_with_log "PostgreSQL" "$pg_log"
    else
        say "PostgreSQL $pg_version is already running"
    fi
else
    say "starting PostgreSQL $pg_version"
    pg_ctlcluster "$pg_version" main start || fail_with_log "PostgreSQL" "$pg_log"
fi

wait_for "PostgreSQL" "$pg_log" - pg_isready -q -h 127.0.0.1 -p 5432 -t 2

# CREATE DATABASE cannot run inside a DO block, so \gexec runs the statements that
# the queries return, which is nothing when the role or database already exists.
runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d postgres >&2 <<'SQL'
SELECT 'CREATE ROLE qhana'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'qhana')
\gexec
ALTER ROLE qhana WITH LOGIN CREATEDB PASSWORD 'qhana';
SELECT 'CREATE DATABASE qhana_tasks_test OWNER qhana'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'qhana_tasks_test')
\gexec
ALTER DATABASE qhana_tasks_test OWNER TO qhana;
SQL

# --- MariaDB ---------------------------------------------------------------------

mariadb_log=/var/log/mysql/mariadbd-ci.log

mariadb_running() {
    mariadb-admin --protocol=socket -u root ping >/dev/null 2>&1
}

mariadb_config_changed=false

if write_config /etc/mysql/mariadb.conf.d/99-qhana-tasks-ci.cnf \
    "# Written by .ci/databases.sh of flask-qhana-tasks.
[mysqld]
bind-address = 127.0.0.1
port = 3306"; then
    mariadb_config_changed=true
fi

if mariadb_running && $mariadb_config_changed; then
    say "stopping MariaDB to apply its new settings"
    mariadb-admin --protocol=socket -u root shutdown
fi

if mariadb_running; then
    say "MariaDB is already running"
else
    # The package's post-install script normally creates the system tables; this
    # only repairs a data directory that lacks them.
    if [[ ! -d /var/lib/mysql/mysql ]]; then
        say "initialising the MariaDB data directory"
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >&2
    fi

    say "starting MariaDB"
    install -d -o mysql -g mysql -m 0755 /run/mysqld /var/log/mysql

    # setsid detaches the server from this script's session; its output goes to
    # the log so that it holds no pipe of the caller open.
    setsid mariadbd --user=mysql </dev/null >>"$mariadb_log" 2>&1 &
    mariadb_pid=$!

    wait_for "MariaDB" "$mariadb_log" "$mariadb_pid" mariadb_running
fi

# The backslashes make the underscores literal in the grant's name pattern; `%`
# lets the user create and drop one database per test worker.
mariadb --protocol=socket -u root >&2 <<'SQL'
CREATE DATABASE IF NOT EXISTS qhana_tasks_test CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS 'qhana'@'%';
ALTER USER 'qhana'@'%' IDENTIFIED BY 'qhana';
GRANT ALL PRIVILEGES ON `qhana\_tasks\_test%`.* TO 'qhana'@'%';
SQL

# Pinging as qhana, not as root, keeps refused root logins out of the server log.
wait_for "MariaDB" "$mariadb_log" - env MYSQL_PWD=qhana \
    mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 -u qhana --connect-timeout=2 ping

# --- Check -----------------------------------------------------------------------

# Log in as the tests will: over TCP, with the password.
PGPASSWORD=qhana psql -X -q -h 127.0.0.1 -p 5432 -U qhana -d qhana_tasks_test \
    -c 'SELECT 1' >/dev/null \
    || die "user 'qhana' cannot log in to PostgreSQL at 127.0.0.1:5432."

MYSQL_PWD=qhana mariadb --protocol=tcp -h 127.0.0.1 -P 3306 -u qhana qhana_tasks_test \
    -e 'SELECT 1' >/dev/null \
    || die "user 'qhana' cannot log in to MariaDB at 127.0.0.1:3306."

say "PostgreSQL $(runuser -u postgres -- psql -X -At -c 'SHOW server_version') and" \
    "MariaDB $(mariadb --protocol=socket -u root -N -e 'SELECT VERSION()') are ready"

printf '%s\n' \
    "QHANA_TASKS_TEST_POSTGRES_URI=$QHANA_TASKS_TEST_POSTGRES_URI" \
    "QHANA_TASKS_TEST_MARIADB_URI=$QHANA_TASKS_TEST_MARIADB_URI"
