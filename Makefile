# sluice build. On a fresh Debian machine as root: `make run`, `make test`.
SHELL   := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# Extra flags for `make run`, e.g. make run ARGS="--config my.hcl".
ARGS    ?=

.PHONY: all build run test test-interop check-fmt bin/cosign bin/oras test-race bench bench-stages fuzz gadgets check-gadgets stages check-stages test-stages-wasm check-test-stages-wasm lint clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/sluice ./cmd/sluice

# The agent on its built-in default config: the built-in gadgets into the
# terminal. Loading eBPF needs root (or CAP_BPF + CAP_PERFMON).
run: build
	./bin/sluice agent $(ARGS)

# Privileged tests load real eBPF programs; they skip when not root, and fail
# instead of skipping when SLUICE_REQUIRE_BPF=1 (as in CI).
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

test-race:
	$(GO) test -race -count=1 -timeout 30m ./...

# Hot-path benchmarks with allocations.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./...

FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./sources/decode
	$(GO) test -run '^$$' -fuzz FuzzAppendJSON -fuzztime $(FUZZTIME) ./pipeline/codec
	$(GO) test -run '^$$' -fuzz FuzzScan -fuzztime $(FUZZTIME) ./sdk/go/sluice
	$(GO) test -run '^$$' -fuzz FuzzProcess -fuzztime $(FUZZTIME) ./sdk/go/sluice
	$(GO) test -run '^$$' -fuzz FuzzParseResult -fuzztime $(FUZZTIME) ./wasmstages
	$(GO) test -run '^$$' -fuzz FuzzRewrite -fuzztime $(FUZZTIME) ./wasmstages/internal/interrupt
	$(GO) test -run '^$$' -fuzz FuzzSpoolSegment -fuzztime $(FUZZTIME) ./sinks

# Regenerates the committed gadget objects with clang-19 (installed via apt
# when missing).
gadgets:
	bash gadgets/build.sh

# Fails when regenerating the gadget objects changes them.
check-gadgets: gadgets
	git diff --exit-code -- gadgets/

# Regenerates the committed example stages (examples/stages/*.wasm): Go ones
# with the Go toolchain, C ones with clang-19 and wasi-libc (installed via apt
# when missing).
stages: test-stages-wasm
	bash examples/stages/build.sh

# Fails when a committed example stage differs from a fresh build.
check-stages: check-test-stages-wasm
	bash examples/stages/build.sh --check

# Regenerates the host's own test guests (wasmstages/testdata/*.wasm: C
# against the raw ABI, misbehaving on purpose, and one Go guest).
test-stages-wasm:
	bash wasmstages/testdata/build.sh

check-test-stages-wasm: test-stages-wasm
	git diff --exit-code -- wasmstages/testdata/

# End-to-end stage figures, as root: trace_open throughput with and without
# a Wasm filter, and agent start to first event with a cached module.
bench-stages: build
	bash bench/stage-throughput.sh
	bash bench/stage-startup.sh

# The real cosign, built from the Go module proxy, for TestCosignInterop
# (cmd/sluice): sluice's signatures must verify with cosign and cosign's with
# sluice. .ci/run builds it and bin/oras and sets SLUICE_COSIGN and
# SLUICE_ORAS, so that make test runs both interop tests.
COSIGN_VERSION ?= v2.6.5
bin/cosign:
	GOBIN=$(CURDIR)/bin GOFLAGS=-mod=mod $(GO) install github.com/sigstore/cosign/v2/cmd/cosign@$(COSIGN_VERSION)

# The oras CLI, a standard OCI client, for TestORASInspectsImages
# (cmd/sluice): images sluice builds must read as plain OCI artifacts.
ORAS_VERSION ?= v1.3.6
bin/oras:
	GOBIN=$(CURDIR)/bin GOFLAGS=-mod=mod $(GO) install oras.land/oras/cmd/oras@$(ORAS_VERSION)

# Both interop tests against the real third-party tools.
test-interop: bin/cosign bin/oras
	SLUICE_COSIGN=$(CURDIR)/bin/cosign SLUICE_ORAS=$(CURDIR)/bin/oras $(GO) test -count=1 -run 'TestCosignInterop|TestORASInspectsImages' -v ./cmd/sluice

check-fmt:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

lint: check-fmt
	$(GO) vet ./...

clean:
	rm -rf bin
