# Sluice build and test entry points. `make test` is what CI runs: it
# installs what the tests need and runs every tier.
GO ?= go

.PHONY: test deps generate check-generate vet unit integration build
.PHONY: integration-core crosslang compat rabbitmq-install rabbitmq-start rabbitmq-stop compare-rabbitmq
.PHONY: release release-bin release-image release-probe fuzz-http fuzz fuzz-store

# Unit tests and the integration tiers run once each: -tags integration
# builds both, so `test` does not run the unit tests a second time.
test: deps check-generate vet integration

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

# The fast tier alone, for development.
unit:
	$(GO) test -race -count=1 ./...

# Every test: each package's unit and integration tests (crash tests of the real
# binary among them), then the two tiers that judge Sluice with real clients from
# outside and print their own report (hence -v).
integration: integration-core crosslang compat

integration-core:
	$(GO) test -race -count=1 -tags integration $$($(GO) list -tags integration ./... | grep -v -e '/test/crosslang$$' -e '/test/compat$$')

# pika (python3-pika) and amqplib (npm) smoke scripts against Sluice.
crosslang:
	$(GO) test -race -count=1 -tags integration -v ./test/crosslang/

# The integration suite shipped in github.com/rabbitmq/amqp091-go against Sluice;
# prints pass/skip/fail counts (skip list in test/compat/compat_test.go).
compat:
	$(GO) test -race -count=1 -tags integration -timeout 15m -v ./test/compat/

# A private RabbitMQ node (127.0.0.1:5681, data under /tmp/sluice-rabbitmq) for
# comparisons and benchmarks; not part of `make test`.
rabbitmq-install:
	bash scripts/rabbitmq-local.sh install

rabbitmq-start: rabbitmq-install
	bash scripts/rabbitmq-local.sh start

rabbitmq-stop:
	bash scripts/rabbitmq-local.sh stop

# The crosslang and compat tiers against that RabbitMQ instead of Sluice: what
# "behaves as RabbitMQ does" is measured against. Leaves the node running.
compare-rabbitmq: deps rabbitmq-start
	SLUICE_TEST_AMQP_URL=$$(bash scripts/rabbitmq-local.sh url) $(GO) test -count=1 -tags integration -timeout 15m -v ./test/crosslang/ ./test/compat/

# Release: static binaries (no cgo, no paths of the build machine, the
# version stamped; `sluice version` prints it), checked static, and the
# container image (Dockerfile; needs a Docker daemon). `make test` needs none
# of it; packaging/checkstatic's test builds a probe with the same flags.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
DIST ?= dist
IMAGE ?= sluice
# $(call release_build,GOARCH,OUTPUT,PACKAGE)
release_build = GOOS=linux GOARCH=$(1) CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(2) $(3)

release: release-bin release-image

release-bin:
	$(call release_build,amd64,$(DIST)/sluice-linux-amd64,./cmd/sluice)
	$(call release_build,arm64,$(DIST)/sluice-linux-arm64,./cmd/sluice)
	$(GO) run ./packaging/checkstatic $(DIST)/sluice-linux-amd64 $(DIST)/sluice-linux-arm64
	cd $(DIST) && sha256sum sluice-linux-* > SHA256SUMS

release-image: release-bin
	docker build --build-arg BINARY=$(DIST)/sluice-linux-amd64 --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) .

PROBE_OUT ?= $(DIST)/probe
release-probe:
	$(call release_build,$(shell $(GO) env GOARCH),$(PROBE_OUT),./packaging/checkstatic/testdata/probe)

# Every Go fuzz target in the module, FUZZTIME each (default 10m); not part
# of `make test`. Crashers land in the package's testdata/fuzz/.
FUZZTIME ?= 10m
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

# The HTTP API's JSON bodies and the name rule alone.
fuzz-http:
	$(GO) test -run '^$$' -fuzz '^FuzzAPIBodies$$' -fuzztime $(FUZZTIME) ./internal/httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzCheckName$$' -fuzztime $(FUZZTIME) ./internal/broker/

# The on-disk decoders alone: message records, index entries and states, metadata
# records, and the WAL check, FUZZTIME each.
fuzz-store:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRecord$$' -fuzztime $(FUZZTIME) ./internal/records/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeIndex$$' -fuzztime $(FUZZTIME) ./internal/records/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeMeta$$' -fuzztime $(FUZZTIME) ./internal/records/
	$(GO) test -run '^$$' -fuzz '^FuzzCheckWAL$$' -fuzztime $(FUZZTIME) ./internal/store/pebblestore/

# test/memory's publisher without confirms at 8 GB instead of `make test`'s 1.5 GB
# (MEMORY_SCENARIO_BYTES, e.g. 17GB); about a minute on two cores. Not part of `make test`.
MEMORY_SCENARIO_BYTES ?= 8GB
.PHONY: memory-long
memory-long:
	MEMORY_SCENARIO_BYTES=$(MEMORY_SCENARIO_BYTES) $(GO) test -count=1 -tags integration -timeout 30m -v -run '^TestPublisherWithoutConfirms$$' ./test/memory/

# Failover of a 3-node quorum queue: kill -9 of its leader until the first
# confirmed publish through a surviving node, median of 10 trials.
.PHONY: bench-failover
bench-failover:
	SLUICE_FAILOVER_TRIALS=10 $(GO) test -count=1 -tags integration -timeout 10m -v -run TestFailoverTime ./test/cluster/

# The fault harness's long run: rounds of randomly drawn faults (kill -9 of
# the leader or a follower, SIGSTOP, power loss, a truncated or bit-flipped
# log tail and, as root, network partitions) on a 3-node cluster for
# CHAOS_DURATION, each round checked. CHAOS_SEED replays a schedule (the
# seed is printed); the summary goes to CHAOS_SUMMARY. Not part of `make test`.
.PHONY: chaos
CHAOS_DURATION ?= 30m
CHAOS_SEED ?=
CHAOS_SUMMARY ?= $(CURDIR)/dist/chaos-summary.txt
CHAOS_TIMEOUT ?= 3h
chaos:
	mkdir -p $(dir $(CHAOS_SUMMARY))
	SLUICE_CHAOS_DURATION=$(CHAOS_DURATION) SLUICE_CHAOS_SEED=$(CHAOS_SEED) SLUICE_CHAOS_SUMMARY=$(CHAOS_SUMMARY) \
		$(GO) test -count=1 -tags integration -timeout $(CHAOS_TIMEOUT) -v -run '^TestChaos$$' ./test/cluster/
	@echo "chaos summary: $(CHAOS_SUMMARY)"

# Replicated against single: publish with confirms and consume with acks
# (scripts/bench-compare.sh's publish and consume-ack runs, amqp091-go via
# `sluice bench`) against a 3-node Sluice quorum queue, single-node Sluice and
# a private 3-node RabbitMQ cluster's quorum queue, in one run, with the
# ratios the issue sets targets for. DURATION, CONSUME_MESSAGES and ROUNDS
# pass through (see the script); stops what it started.
.PHONY: bench-cluster
bench-cluster: rabbitmq-install
	TARGETS="sluice-cluster sluice rabbitmq-cluster" SCENARIOS="publish consume-ack" \
		RATIOS="sluice-cluster/rabbitmq-cluster sluice-cluster/sluice" bash scripts/bench-compare.sh
