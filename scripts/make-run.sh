#!/usr/bin/env bash
# `make run`: build a local primary + 2 standbys, check them, run the
# benchmark with every routing strategy, and say where the report is. The
# env is taken down whatever happens.
set -uo pipefail
BIN=${BIN:-bin/pgbenchx}
NAME=${PGBENCHX_ENV:-makerun}
DURATION=${DURATION:-10s}
trap '"$BIN" env down --name "$NAME" >/dev/null 2>&1' EXIT
"$BIN" env down --name "$NAME" >/dev/null 2>&1 || true
"$BIN" env up --standbys 2 --name "$NAME" || exit 1
echo
"$BIN" env verify --name "$NAME" || exit 1
echo
"$BIN" run --name "$NAME" --standbys 2 --strategies all --duration "$DURATION" --clients 8 --out results || exit 1
echo
"$BIN" env down --name "$NAME"
trap - EXIT
