# sluice build. On a fresh Debian machine as root: `make run`, `make test`.
SHELL   := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
# What `sluice version` prints: a semantic version from the git tags (see
# scripts/version.sh), the commit, and the build date (the commit's time for
# a clean checkout, so that rebuilding a commit gives the same binary).
VERSION    ?= $(shell bash scripts/version.sh)
COMMIT     ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell bash scripts/version.sh --date)
LDFLAGS    := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildDate=$(BUILD_DATE)
# Extra flags for `make run`, e.g. make run ARGS="--config my.hcl".
ARGS    ?=

.PHONY: all build man image release run test test-interop check-fmt bin/cosign bin/oras test-race bench bench-quick bench-go soak bench-swap bench-stages bench-wasm-bpf fuzz gadgets check-gadgets stages check-stages test-stages-wasm check-test-stages-wasm wasm-bpf-apps check-wasm-bpf-apps lint clean

all: build

# CGO_ENABLED=0: nothing in sluice needs C, and a static binary maps no
# libc (a megabyte and a half of the agent's RSS) and runs the same on any
# distribution.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/sluice ./cmd/sluice

# Static, reproducible release binaries (CGO_ENABLED=0, -trimpath, the
# commit's time as build date): bin/linux-amd64/sluice, bin/linux-arm64/sluice.
ARCH      ?= $(shell $(GO) env GOARCH)
bin/linux-%/sluice: FORCE
	CGO_ENABLED=0 GOOS=linux GOARCH=$* $(GO) build -trimpath -buildvcs=false -ldflags '$(LDFLAGS)' -o $@ ./cmd/sluice
FORCE:

# The container image, built without a container runtime or base image
# (internal/tools/mkimage, go-containerregistry): bin/sluice-image-ARCH.tar,
# byte for byte the same for the same commit. podman load -i it.
IMAGE     ?= sluice
IMAGE_TAG ?= $(subst +,-,$(VERSION))
image: bin/linux-$(ARCH)/sluice
	$(GO) run ./internal/tools/mkimage -binary $< -arch $(ARCH) -tag $(IMAGE):$(IMAGE_TAG) -tag $(IMAGE):latest \
		-created $(BUILD_DATE) -version $(VERSION) -revision $(COMMIT) -o bin/sluice-image-$(ARCH).tar

# Release artefacts in bin/release: static linux/amd64 and linux/arm64
# binaries with an SPDX SBOM each (internal/tools/sbom, from the modules the
# binary links), SHA256SUMS over them, and SHA256SUMS.sig, a cosign
# sign-blob signature made by sluice itself with RELEASE_KEY (password in
# $COSIGN_PASSWORD). Without RELEASE_KEY a throw-away key is made next to
# the artefacts (its cosign.pub is copied there): fine to try the target,
# not to publish. Check a release with
#   sluice image verify-blob --key cosign.pub --signature SHA256SUMS.sig SHA256SUMS && sha256sum -c SHA256SUMS
# (or cosign verify-blob ... --insecure-ignore-tlog).
RELEASE_DIR   ?= bin/release
RELEASE_ARCHS ?= amd64 arm64
RELEASE_KEY   ?=
SIGNER        := bin/linux-$(ARCH)/sluice
release: $(foreach a,$(RELEASE_ARCHS),bin/linux-$(a)/sluice) $(SIGNER) man
	rm -rf $(RELEASE_DIR) && mkdir -p $(RELEASE_DIR)
	for a in $(RELEASE_ARCHS); do \
		cp bin/linux-$$a/sluice $(RELEASE_DIR)/sluice-linux-$$a && \
		$(GO) run ./internal/tools/sbom -created $(BUILD_DATE) -name sluice -version $(VERSION) \
			-o $(RELEASE_DIR)/sluice-linux-$$a.spdx.json $(RELEASE_DIR)/sluice-linux-$$a || exit 1; \
	done
	tar --sort=name --mtime=$(BUILD_DATE) --owner=0 --group=0 --numeric-owner -C bin -czf $(RELEASE_DIR)/sluice-man.tar.gz man
	cd $(RELEASE_DIR) && sha256sum sluice-* > SHA256SUMS
	key='$(RELEASE_KEY)'; \
	if [ -z "$$key" ]; then \
		key=$(RELEASE_DIR)/.throwaway/cosign.key; mkdir -p $(RELEASE_DIR)/.throwaway; \
		env -u COSIGN_PASSWORD $(SIGNER) image generate-key-pair --no-password --output-key-prefix $(RELEASE_DIR)/.throwaway/cosign >/dev/null && \
		cp $(RELEASE_DIR)/.throwaway/cosign.pub $(RELEASE_DIR)/cosign.pub && \
		echo "release: signed with a throw-away key ($(RELEASE_DIR)/cosign.pub); set RELEASE_KEY to sign with yours"; \
	fi; \
	$(SIGNER) image sign-blob --key "$$key" --output-signature $(RELEASE_DIR)/SHA256SUMS.sig $(RELEASE_DIR)/SHA256SUMS
	@ls -l $(RELEASE_DIR)

# Man pages for every command, generated from the same definitions as
# --help and the shell completion (not committed: they would only go stale).
man: build
	rm -rf bin/man
	./bin/sluice man bin/man

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

# The end-to-end benchmark, as root (bench/sluicebench): the synthetic
# producer against a bare ring buffer reader, every sink with and without
# Wasm stages, trace_open under an open loop, start to first event, the
# default config's memory, JetStream publishing and the built-in stages'
# Go benchmarks, in one run of about twelve minutes (the 64-byte ratio
# targets' cases three times: -rounds). Results in bench/results/latest.{md,json}, the targets in
# README.md. BENCH_ARGS=-quick takes about three.
BENCH_ARGS ?=
bench: build bin/sluicebench
	./bin/sluicebench $(BENCH_ARGS)

bench-quick: build bin/sluicebench
	./bin/sluicebench -quick $(BENCH_ARGS)

bin/sluicebench: FORCE
	$(GO) build -o $@ ./bench/sluicebench

# Ten minutes at 50,000 events/s through a Wasm stage into JetStream and a
# file, as root: memory, goroutines, counters and sequence numbers checked;
# bench/results/soak.{md,json,png}. Not part of make test.
SOAK_ARGS ?=
soak: build bin/sluicebench
	./bin/sluicebench soak $(SOAK_ARGS)

# Every Go benchmark (hot paths, with allocations): the stage, sink, tap
# and queue benchmarks. bench-swap and bench-stages run their own.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./...

# Stage version swaps: digest seen -> serving (C and Go stage, cold and
# warm compilation cache), throughput in 1 s windows around a swap, and
# what stamp_version costs per event.
bench-swap:
	$(GO) test -run '^$$' -bench 'BenchmarkDigestToServing' -benchtime 10x -count 1 ./agent
	$(GO) test -run '^$$' -bench 'BenchmarkSwapThroughput' -benchtime 1x -count 1 -v ./wasmstages
	$(GO) test -run '^$$' -bench 'BenchmarkStamp' -benchmem -count 1 ./wasmstages

FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz 'FuzzDecode$$' -fuzztime $(FUZZTIME) ./sources/decode
	$(GO) test -run '^$$' -fuzz FuzzDecodeHinted -fuzztime $(FUZZTIME) ./sources/decode
	$(GO) test -run '^$$' -fuzz FuzzAppendJSON -fuzztime $(FUZZTIME) ./pipeline/codec
	$(GO) test -run '^$$' -fuzz FuzzScan -fuzztime $(FUZZTIME) ./sdk/go/sluice
	$(GO) test -run '^$$' -fuzz FuzzProcess -fuzztime $(FUZZTIME) ./sdk/go/sluice
	$(GO) test -run '^$$' -fuzz FuzzParseResult -fuzztime $(FUZZTIME) ./wasmstages
	$(GO) test -run '^$$' -fuzz FuzzWellFormedMap -fuzztime $(FUZZTIME) ./wasmstages
	$(GO) test -run '^$$' -fuzz FuzzFindKeys -fuzztime $(FUZZTIME) ./wasmstages
	$(GO) test -run '^$$' -fuzz FuzzRewrite -fuzztime $(FUZZTIME) ./internal/interrupt
	$(GO) test -run '^$$' -fuzz FuzzReadBinary -fuzztime $(FUZZTIME) ./wasmbpf
	$(GO) test -run '^$$' -fuzz FuzzParseConfig -fuzztime $(FUZZTIME) ./config
	$(GO) test -run '^$$' -fuzz FuzzImageReader -fuzztime $(FUZZTIME) ./oci
	$(GO) test -run '^$$' -fuzz FuzzSpoolSegment -fuzztime $(FUZZTIME) ./sinks

# Regenerates the committed gadget objects with clang-19 (installed via apt
# when missing).
gadgets:
	bash gadgets/build.sh

# Fails when regenerating the gadget objects changes them.
check-gadgets: gadgets
	git diff --exit-code -- gadgets/ bench/gadgets/

# Regenerates the committed built-in stages (stages/*.wasm): Go ones with the
# Go toolchain, C ones with clang-19 and wasi-libc, Rust ones with Debian's
# rustc, libstd-rust-dev-wasm32 and lld-14 (installed via apt when missing).
stages: test-stages-wasm wasm-bpf-apps
	bash stages/build.sh

# Fails when a committed built-in stage differs from a fresh build.
check-stages: check-test-stages-wasm check-wasm-bpf-apps
	bash stages/build.sh --check

# Regenerates the host's own test guests (wasmstages/testdata/*.wasm: C
# against the raw ABI, misbehaving on purpose, Go guests, Inspektor Gadget
# modules in Go and C, and a Rust gadget module).
test-stages-wasm:
	bash wasmstages/testdata/build.sh

check-test-stages-wasm: test-stages-wasm
	git diff --exit-code -- wasmstages/testdata/

# Regenerates the wasm-bpf test applications (wasmbpf/testdata: each eBPF
# object with clang-19 -target bpf, each application with clang-19
# --target=wasm32-wasip1 and wasi-libc, the object embedded with #embed).
wasm-bpf-apps:
	bash wasmbpf/testdata/build.sh

# Fails when a committed application or object differs from a fresh build.
check-wasm-bpf-apps:
	bash wasmbpf/testdata/build.sh --check

# End-to-end stage figures, as root: trace_open throughput with and without
# a Wasm filter, and agent start to first event with a cached module.
bench-stages: build
	bash bench/stage-throughput.sh
	bash bench/stage-startup.sh

# Records/s of a wasm-bpf application's ring buffer poll into a pipeline
# against the same object as a plain gadget, in one run (as root).
bench-wasm-bpf:
	$(GO) test -run '^$$' -bench RingBufferIntoPipeline -benchtime 6x ./wasmbpf

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
