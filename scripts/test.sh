#!/usr/bin/env bash
# Runs every Sluice test on a Debian machine with Rust: starts PostgreSQL and MariaDB (installing them if missing),
# builds the workspace and runs the unit, conformance and end-to-end tests, then the dashboard in Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

# Outside the clone, so that a fresh clone reuses earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
export SLUICE_TEST_POSTGRES="${SLUICE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
export SLUICE_TEST_MYSQL="${SLUICE_TEST_MYSQL:-mysql://root@127.0.0.1:3306}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

postgres_ready() {
  command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432
}

ensure_postgres() {
  if postgres_ready; then
    return
  fi
  local fresh=no
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "PostgreSQL is not installed: installing it"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fresh=yes
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [ "$fresh" = yes ]; then
    # The tests connect as user postgres over TCP without a password, as on the project's machines.
    echo "host all all 127.0.0.1/32 trust" | as_root tee "/etc/postgresql/$version/main/pg_hba.conf.sluice" >/dev/null
    as_root sh -c "cat /etc/postgresql/$version/main/pg_hba.conf >> /etc/postgresql/$version/main/pg_hba.conf.sluice \
      && mv /etc/postgresql/$version/main/pg_hba.conf.sluice /etc/postgresql/$version/main/pg_hba.conf"
  fi
  echo "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do
    postgres_ready && return
    sleep 0.5
  done
  echo "PostgreSQL did not start on 127.0.0.1:5432" >&2
  exit 1
}

mariadb_ready() {
  command -v mysqladmin >/dev/null && mysqladmin ping -h 127.0.0.1 -P 3306 --silent >/dev/null 2>&1
}

# The SQL data tasks are tested on MySQL too, with MariaDB.
ensure_mariadb() {
  if mariadb_ready; then
    return
  fi
  local fresh=no
  if [ ! -x /usr/sbin/mariadbd ]; then
    echo "MariaDB is not installed: installing it"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
    fresh=yes
  fi
  echo "starting MariaDB"
  as_root install -d -o mysql -g mysql /run/mysqld
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  local ready=no
  for _ in $(seq 1 60); do
    if mariadb_ready; then
      ready=yes
      break
    fi
    sleep 0.5
  done
  if [ "$ready" = no ]; then
    echo "MariaDB did not start on 127.0.0.1:3306" >&2
    exit 1
  fi
  if [ "$fresh" = yes ]; then
    # The tests connect as root over TCP without a password, as on the project's machines; Debian's root
    # otherwise signs in only through the socket, as the system's root.
    as_root mariadb -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
      CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
      GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
  fi
}

# The REST API's black-box tests use Airflow's own Python client and schemathesis, from PyPI; the S3 lake's, moto;
# dags/penguins_sklearn.py, scikit-learn with its ONNX export (and pyarrow to read the lake). Their venv lives
# outside the clone, so a fresh clone reuses it; it is rebuilt when the pinned versions change.
PYTHON_TOOLS="apache-airflow-client==3.3.2 schemathesis==4.32.5 moto[server]==5.2.5 scikit-learn==1.9.1 skl2onnx==1.20.0 onnx==1.23.2 pyarrow==26.0.1 aiosmtpd==1.4.6"
ensure_python_tools() {
  local venv="$HOME/.cache/sluice-python"
  if [ "$(cat "$venv/.sluice-tools" 2>/dev/null)" != "$PYTHON_TOOLS" ]; then
    echo "installing the Python test tools: $PYTHON_TOOLS"
    rm -rf "$venv"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086 # one word per package
    "$venv/bin/pip" install -q $PYTHON_TOOLS
    echo "$PYTHON_TOOLS" > "$venv/.sluice-tools"
  fi
  export SLUICE_TEST_PYTHON="$venv/bin/python"
}

ensure_postgres
ensure_mariadb
ensure_python_tools
cargo build --workspace --all-targets
# A test binary that hangs (a deadlock, a request never answered) fails after 10 minutes instead of holding the
# whole run; the longest binary takes about one.
host=$(rustc -vV | sed -n 's/^host: //p')
export "CARGO_TARGET_$(echo "$host" | tr '[:lower:]-' '[:upper:]_')_RUNNER=timeout --kill-after=10s 600s"
cargo test --workspace --no-fail-fast

# The dashboard in a real browser: Debian's Chromium driven by playwright-core (from npm, pinned by
# web/tests/package-lock.json) against a `sluice standalone` the tests start.
ensure_browser_tools() {
  if ! command -v npm >/dev/null; then
    echo "Node.js is not installed: installing it"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  if [ ! -x /usr/bin/chromium ]; then
    echo "Chromium is not installed: installing it"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
}
ensure_browser_tools
(cd web/tests && npm ci --no-audit --no-fund --silent && SLUICE_BIN="$CARGO_TARGET_DIR/debug/sluice" npm test)
