# Sluice build and test entry points. `make test` is what CI runs: it
# installs what the tests need and runs every tier.
GO ?= go

.PHONY: test deps generate check-generate vet unit integration build

test: deps check-generate vet unit integration

build:
	$(GO) build -o bin/sluice ./cmd/sluice

deps:
	bash scripts/install-test-deps.sh

generate:
	$(GO) generate ./internal/amqp/...

# The codec is generated from the spec; regenerating must change nothing.
check-generate:
	bash scripts/check-generate.sh

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

integration:
	$(GO) test -race -count=1 -tags integration ./...
