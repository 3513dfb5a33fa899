#!/bin/bash
# make image: the pgbenchx load generator as a FROM scratch image of the
# static binary (deploy/Dockerfile). The last line is IMAGE=<name>.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${PGBENCHX_TOOL_IMAGE:-pgbenchx:dev}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
CGO_ENABLED=0 go build -trimpath -o "$ctx/pgbenchx" ./cmd/pgbenchx
cp deploy/Dockerfile "$ctx/"
# The legacy builder: FROM scratch needs no pull, and buildx is not here.
DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$ctx" >"$ctx/build.log" 2>&1 || { cat "$ctx/build.log"; exit 1; }
echo "IMAGE=$IMAGE"
