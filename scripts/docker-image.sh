#!/bin/bash
# Builds the images docker envs run (env up --provider docker): pgbenchx's
# own (make image: the link proxy of --net-delay runs in it) and the
# PostgreSQL one, from Debian's packages: no registry is needed. debootstrap makes a
# minimal bookworm root with postgresql-15, trimmed of docs, locales and
# apt lists, and `docker import` turns it into an image. An image of that
# name already there is reused. The last line printed is IMAGE=<name>.
set -euo pipefail
IMAGE=${PGBENCHX_PG_IMAGE:-pgbenchx-postgres:15}
MIRROR=${PGBENCHX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# pgbenchx's own image first (the link proxy of docker envs runs in it):
# rebuilt every time, so that it is this tree's binary; docker's cache
# makes that quick.
bash "$(dirname "$0")/image.sh" | sed 's/^IMAGE=/pgbenchx image: /'
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
	echo "IMAGE=$IMAGE"
	exit 0
fi
if ! command -v debootstrap >/dev/null; then
	SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get install -y debootstrap >/dev/null
fi
ROOT=$(mktemp -d /var/tmp/pgbx-rootfs.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
echo "debootstrap bookworm with postgresql-15 into $ROOT (about a minute)"
debootstrap --variant=minbase --include=postgresql-15 bookworm "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || {
	tail -5 "$ROOT.log"; rm -f "$ROOT.log"; exit 1
}
rm -f "$ROOT.log"
# What a server in a container never reads: the package's own cluster
# (pgbenchx runs initdb itself), docs, manuals, locales, apt's lists.
rm -rf "$ROOT"/var/lib/postgresql/15/main "$ROOT"/etc/postgresql/15/main \
	"$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
	"$ROOT"/usr/share/locale/* "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/* \
	"$ROOT"/var/log/*
tar -C "$ROOT" -c . | docker import \
	--change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'LABEL io.pgbenchx.image=postgres' \
	- "$IMAGE" >/dev/null
echo "image $IMAGE: $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
echo "IMAGE=$IMAGE"
