#!/usr/bin/env bash
# Makes sure PostgreSQL server binaries (initdb, postgres, pg_basebackup) and
# psql are installed, installing Debian's packages when run as root.
set -euo pipefail

have_server() {
  local d
  d=$(pg_config --bindir 2>/dev/null || true)
  for dir in "$d" /usr/lib/postgresql/*/bin; do
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && [ -x "$dir/pg_basebackup" ] && return 0
  done
  return 1
}

if have_server && command -v psql >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "PostgreSQL server binaries are missing. Install them, e.g.: sudo apt-get install postgresql" >&2
  echo "(or point pgbenchx at them with --pg-bin DIR)" >&2
  exit 1
fi
echo "Installing PostgreSQL server packages (apt-get)..." >&2
export DEBIAN_FRONTEND=noninteractive
# The package would create and start a 'main' cluster we do not use.
mkdir -p /etc/postgresql-common
grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf ||
  echo 'create_main_cluster = false' >>/etc/postgresql-common/createcluster.conf
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql postgresql-client >/dev/null
have_server || { echo "apt-get installed postgresql but no server binaries were found" >&2; exit 1; }
