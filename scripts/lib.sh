# shellcheck shell=bash
# Helpers shared by the scripts in this directory. Source it; don't run it.

# pg_bindir prints the directory holding the PostgreSQL server binaries
# (initdb, postgres, pg_ctl): pg_config's, else the newest of
# /usr/lib/postgresql/*/bin, else the one on PATH.
pg_bindir() {
  local dir
  if dir=$(pg_config --bindir 2>/dev/null) && [[ -x $dir/initdb && -x $dir/postgres ]]; then
    echo "$dir"
    return
  fi
  while read -r dir; do
    if [[ -x $dir/initdb && -x $dir/postgres ]]; then
      echo "$dir"
      return
    fi
  done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
  if dir=$(command -v postgres); then
    dir=$(dirname "$dir")
    if [[ -x $dir/initdb ]]; then
      echo "$dir"
      return
    fi
  fi
  return 1
}

# ensure_packages installs the Debian packages the project needs and lacks:
# the PostgreSQL server (initdb, postgres, pgbench), its client (psql), gcc
# (cgo), and the clients the e2e tests drive: pgjdbc with a JDK, psycopg 3,
# psycopg2, SQLAlchemy and Django. Not being root, it prints the command to
# run instead and exits.
ensure_packages() {
  local missing=()
  if ! pg_bindir >/dev/null || ! pgbench --version >/dev/null 2>&1; then
    missing+=(postgresql)
  fi
  if ! psql --version >/dev/null 2>&1; then
    missing+=(postgresql-client)
  fi
  if ! command -v gcc >/dev/null 2>&1; then
    missing+=(gcc)
  fi
  if [[ ! -f /usr/share/java/postgresql.jar ]]; then
    missing+=(libpostgresql-jdbc-java)
  fi
  if ! command -v javac >/dev/null 2>&1; then
    missing+=(openjdk-17-jdk-headless)
  fi
  # Debian installs these for /usr/bin/python3, whichever python3 is on PATH.
  local module package
  for module in psycopg:python3-psycopg psycopg2:python3-psycopg2 sqlalchemy:python3-sqlalchemy django:python3-django; do
    package=${module#*:}
    if ! /usr/bin/python3 -c "import ${module%%:*}" >/dev/null 2>&1; then
      missing+=("$package")
    fi
  done
  if ((${#missing[@]} == 0)); then
    return
  fi
  if ((EUID != 0)) || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing packages: ${missing[*]}; install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}
