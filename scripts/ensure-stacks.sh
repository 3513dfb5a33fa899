#!/usr/bin/env bash
# Makes sure what env up --proxy and --stack run is installed: pgpool-II,
# HAProxy, Patroni, etcd and psycopg2 (Patroni's driver), installing
# Debian's packages when run as root.
#
# pgbenchx starts each of these itself, per env, on ports of its own: the
# packages' own services (pgpool2 on 5432/9999, haproxy, etcd on 2379) must
# not run. A policy-rc.d that refuses every start (exit 101) keeps the
# maintainer scripts from starting them during the install; whatever
# started anyway is stopped and disabled after.
set -euo pipefail

# package:what shows it is there
wanted=(
  "pgpool2:/usr/sbin/pgpool"
  "haproxy:/usr/sbin/haproxy"
  "patroni:/usr/bin/patroni"
  "etcd-server:/usr/bin/etcd"
  "python3-psycopg2:python3-psycopg2"
)
# Debian's services of those packages.
services=(pgpool2:pgpool2 haproxy:haproxy etcd:etcd-server patroni:patroni)

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for w in "${wanted[@]}"; do
  pkg=${w%%:*} what=${w#*:}
  case $what in
  /*) [ -x "$what" ] || missing+=("$pkg") ;;
  *) installed "$what" || missing+=("$pkg") ;;
  esac
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "Missing for env up --proxy / --stack: ${missing[*]}. Install them, e.g.: sudo apt-get install ${missing[*]}" >&2
  echo "(then stop and disable their own services: pgbenchx runs its own instances)" >&2
  exit 1
fi

echo "Installing ${missing[*]} (apt-get)..." >&2
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
saved=""
if [ -e "$policy" ]; then
  saved=$(mktemp)
  cp -p "$policy" "$saved"
fi
restore() {
  if [ -n "$saved" ]; then
    mv -f "$saved" "$policy"
  else
    rm -f "$policy"
  fi
}
trap restore EXIT
printf '#!/bin/sh\n# written by pgbenchx scripts/ensure-stacks.sh for the length of an install\nexit 101\n' >"$policy"
chmod 755 "$policy"

apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# Whatever started anyway (a package that ignores policy-rc.d, or a
# systemd that starts units on its own): stop it, and keep it from
# starting at boot. Only the services of packages this run installed: one
# installed before may be someone's, in use.
for sp in "${services[@]}"; do
  s=${sp%%:*} pkg=${sp#*:}
  case " ${missing[*]} " in *" $pkg "*) ;; *) continue ;; esac
  if [ -d /run/systemd/system ]; then
    systemctl stop "$s" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$s" ] && "/etc/init.d/$s" status >/dev/null 2>&1; then
    "/etc/init.d/$s" stop >/dev/null 2>&1 || true
  fi
  systemctl disable "$s" >/dev/null 2>&1 || true
  update-rc.d "$s" disable >/dev/null 2>&1 || true
done

for w in "${wanted[@]}"; do
  pkg=${w%%:*} what=${w#*:}
  case $what in
  /*) [ -x "$what" ] || { echo "apt-get installed $pkg but $what is missing" >&2; exit 1; } ;;
  esac
done
