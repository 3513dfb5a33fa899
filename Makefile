# pgbenchx: `make run` and `make test` do everything on a fresh machine.
GO          ?= go
BIN         := bin/pgbenchx
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: build run test lint bench deps clean

build:
	$(GO) build -o $(BIN) ./cmd/pgbenchx

# Installs PostgreSQL server packages when missing (apt-get, as root).
deps:
	@scripts/ensure-postgres.sh

run: deps build
	@BIN=$(BIN) scripts/make-run.sh

# -p 1: packages whose tests start clusters must not run at once on a small
# machine, or every timing in them lies.
test: deps
	$(GO) vet ./...
	$(GO) test -p 1 -count=1 -timeout 20m ./...

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench: deps
	$(GO) test -p 1 -run '^$$' -bench . -benchtime 5x ./...

clean:
	rm -rf bin
