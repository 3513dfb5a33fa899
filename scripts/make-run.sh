#!/usr/bin/env bash
# `make run`: build a local primary + 2 standbys, verify them, show their
# status, and take them down again - whatever happens in between.
set -uo pipefail
BIN=${BIN:-bin/pgbenchx}
NAME=${PGBENCHX_ENV:-makerun}
trap '"$BIN" env down --name "$NAME" >/dev/null 2>&1' EXIT
"$BIN" env down --name "$NAME" >/dev/null 2>&1 || true
"$BIN" env up --standbys 2 --name "$NAME" || exit 1
echo
"$BIN" env verify --name "$NAME"; rc=$?
echo
"$BIN" env status --name "$NAME"
echo
"$BIN" env down --name "$NAME"
trap - EXIT
exit $rc
