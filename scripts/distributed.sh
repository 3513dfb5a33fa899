#!/bin/bash
# make distributed: two load-generator containers (the pgbenchx image,
# under docker-compose) against a docker env, started together with one
# --start-at, then merged. The last line is the merged totals.
set -euo pipefail
cd "$(dirname "$0")/.."
PGBX=bin/pgbenchx
NAME=${PGBENCHX_DIST_ENV:-dist}
export RESULTS=$PWD/results/distributed-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$RESULTS"
PG_IMAGE=$(bash scripts/docker-image.sh | tail -1 | cut -d= -f2)
PGBENCHX_TOOL_IMAGE=$(bash scripts/image.sh | tail -1 | cut -d= -f2)
export PGBENCHX_TOOL_IMAGE
cleanup() {
	docker-compose -f deploy/docker-compose.yml -p "pgbenchx-$NAME" down >/dev/null 2>&1 || true
	"$PGBX" env down --name "$NAME" >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$PGBX" env down --name "$NAME" >/dev/null 2>&1 || true
"$PGBX" env up --provider docker --image "$PG_IMAGE" --name "$NAME" --standbys 2 --fast >/dev/null
# The DSNs go to the generators without the password (it would be in
# their command line, for ps to show); the password travels as PGPASSWORD,
# which the driver reads. Every node of an env has the same one.
nopw() { sed -E 's#^(postgres://[^:/@]+):[^@]*@#\1@#'; }
dsn() { "$PGBX" env dsn --name "$NAME" --node "$1"; }
full=$(dsn primary)
PGPASSWORD=$(printf '%s' "$full" | sed -E 's#^postgres://[^:/@]+:([^@]*)@.*#\1#')
PRIMARY=$(printf '%s' "$full" | nopw)
STANDBY1=$(dsn standby1 | nopw)
STANDBY2=$(dsn standby2 | nopw)
START_AT=$(date -u -d '+20 seconds' +%Y-%m-%dT%H:%M:%SZ)
export PGPASSWORD PRIMARY STANDBY1 STANDBY2 START_AT
echo "two generators against docker env $NAME, reads from $START_AT"
docker-compose -f deploy/docker-compose.yml -p "pgbenchx-$NAME" up --no-color >"$RESULTS/compose.log" 2>&1 || true
for g in gen1 gen2; do
	code=$(docker inspect -f '{{.State.ExitCode}}' "$(docker-compose -f deploy/docker-compose.yml -p "pgbenchx-$NAME" ps -q "$g")")
	[ "$code" = 0 ] || { echo "generator $g exited $code:"; tail -5 "$RESULTS/compose.log"; exit 1; }
done
"$PGBX" merge "$RESULTS"/gen1/* "$RESULTS"/gen2/* --out "$RESULTS/merged" >"$RESULTS/merge.log"
# Each generator's reads from its own line, the merged run's from merge's.
reads() { { grep -oE 'every read end to end: [0-9,]+ reads' || true; } | head -1 | grep -oE '[0-9,]+' | tr -d ','; }
g1=$(grep -a '^gen1' "$RESULTS/compose.log" | reads); g2=$(grep -a '^gen2' "$RESULTS/compose.log" | reads)
m=$(reads <"$RESULTS/merge.log")
[ -n "$g1" ] && [ -n "$g2" ] && [ -n "$m" ] || { echo "could not read the reads counts (gen1 '${g1}', gen2 '${g2}', merged '${m}'): see $RESULTS"; exit 1; }
echo "runs and the merged one in $RESULTS"
[ "$m" = $((g1 + g2)) ] || { echo "merged $m reads, but the generators made $g1 + $g2"; exit 1; }
echo "merged totals: gen1 $g1 + gen2 $g2 = $m reads; $(grep -m1 -E 'every read end to end' "$RESULTS/merge.log" | sed 's/^ *//')"
