# pgbenchx: `make run` and `make test` do everything on a fresh machine.
GO          ?= go
BIN         := bin/pgbenchx
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# The version --version and every run.json give: the commit, marked when
# the tree had changes; "devel" outside a git checkout.
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS     := -X github.com/pgbenchx/pgbenchx/bench.version=$(VERSION)

.PHONY: build run test lint bench deps clean docker-image image distributed

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/pgbenchx

# Installs PostgreSQL server packages when missing (apt-get, as root), and
# what env up --proxy and --stack run: pgpool-II, HAProxy, Patroni, etcd.
deps:
	@scripts/ensure-postgres.sh
	@scripts/ensure-stacks.sh

run: deps build
	@BIN=$(BIN) scripts/make-run.sh

# -p 1: packages whose tests start clusters must not run at once on a small
# machine, or every timing in them lies.
test: deps
	@# Where a Docker engine answers, the docker provider's tests need its
	@# image: built from Debian's packages once, then reused. A failed build
	@# is not fatal: those tests then skip, saying why.
	-@if docker info >/dev/null 2>&1; then bash scripts/docker-image.sh; fi
	$(GO) vet ./...
	$(GO) test -p 1 -count=1 -timeout 20m ./...

# docker-image builds (or reuses) the PostgreSQL image docker envs run;
# its last line is IMAGE=<name>.
docker-image:
	@bash scripts/docker-image.sh

# image builds the pgbenchx load generator's image (FROM scratch, the
# static binary); its last line is IMAGE=<name>.
image:
	@bash scripts/image.sh

# distributed runs two generator containers under docker-compose against a
# docker env, merges their runs and prints the merged totals.
distributed: build
	@bash scripts/distributed.sh

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Three kinds of benchmarks, one line each:
# - micro-benchmarks (routing, metrics, workload, ...: no cluster) need a
#   real b.N, so the testing package picks it;
# - env's times `env up` averaged over -benchtime ups;
# - cmd/pgbenchx's start a cluster and measure once per call whatever b.N
#   (pgbenchx vs pgbench closed loop and open loop, RSS at 16/256 clients)
#   and print their figures. PGBENCHX_SOAK=1 make bench adds the 10-minute
#   RSS soak at 64 clients.
bench: deps
	$(GO) test -p 1 -run '^$$' -bench . -benchmem $$($(GO) list ./... | grep -v -e '/cmd/' -e '/env$$' -e '/env/')
	$(GO) test -p 1 -run '^$$' -bench . -benchtime 3x ./env/...
	$(GO) test -p 1 -run '^$$' -bench . -benchtime 1x -timeout 30m ./cmd/...

clean:
	rm -rf bin
