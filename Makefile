# zennet's build. Everything it needs it installs (Debian packages, as root)
# and caches under $(CACHE), so a fresh machine needs only 'make demo' or
# 'make test'.

SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/zennet
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -s -w -X github.com/zennet/zennet/cli.version=$(VERSION)

# gVisor pinned: Debian's runsc 20221219 is broken on this kernel (statx
# rejects AT_NO_AUTOMOUNT; --network=sandbox does not start).
RUNSC_VERSION := v0.0.0-20260905035102-160fafc42237
RUNSC := $(CACHE)/runsc/$(RUNSC_VERSION)/runsc
# The Lightning test network (btcd simnet + two lnd), pinned; @latest of lnd
# resolves to an old rc that does not compile.
LND_VERSION := v0.21.3-beta
BTCD_VERSION := v0.26.2
LND := $(CACHE)/lnd/$(LND_VERSION)/lnd
IMAGE := $(CACHE)/images/bookworm
# The cluster benchmark's image: the default one and what jobs run across
# hosts (Open MPI, mpi4py, iperf3), built with 'zennet image build --packages'.
TEST_IMAGE := $(CACHE)/images/bookworm-cluster
TEST_PACKAGES := openmpi-bin,python3-mpi4py,iperf3
BIN := bin/zennet
APT_PACKAGES := mmdebstrap openssh-client rsync tmux iptables

export ZENNET_RUNSC := $(abspath $(RUNSC))
export ZENNET_IMAGE := $(abspath $(IMAGE))
export ZENNET_TEST_IMAGE := $(abspath $(TEST_IMAGE))
export ZENNET_CACHE_DIR := $(abspath $(CACHE))

.PHONY: man all build deps bench-deps runsc lnd image test-image demo test unit vet fmt-check bench bench-pricing clean

all: build

# zennet, and beside it zennet-agent: the small SSH server a provider runs
# in the sandbox for each connection (found next to zennet), and
# zennet-dashboard, the provider's terminal dashboard (a binary of its own so
# that no other command loads the terminal UI).
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/zennet
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(dir $(BIN))zennet-agent ./cmd/zennet-agent
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(dir $(BIN))zennet-dashboard ./cmd/zennet-dashboard

# Man pages of every command, from their help, in man/man1 ('man -l man/man1/zennet.1').
man: build
	$(BIN) man man/man1

# Debian packages: mmdebstrap builds the image; the OpenSSH client, rsync and
# tmux are what the end-to-end tests drive.
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "make: need root to apt-get install$$missing" >&2; exit 1; fi; \
	  echo "make: apt-get install$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

runsc: $(RUNSC)
$(RUNSC):
	@echo "make: building the pinned runsc $(RUNSC_VERSION) (about 2 minutes, once)"
	mkdir -p $(@D).tmp
	CGO_ENABLED=0 GOBIN=$(abspath $(@D)).tmp $(GO) install gvisor.dev/gvisor/runsc@$(RUNSC_VERSION)
	rm -rf $(@D) && mv $(@D).tmp $(@D)
	mkdir -p $(CACHE)/bin && ln -sf $(abspath $(RUNSC)) $(CACHE)/bin/runsc

lnd: $(LND)
$(LND):
	@echo "make: building the pinned lnd $(LND_VERSION) and btcd $(BTCD_VERSION) (about 7 minutes, once)"
	LND_VERSION=$(LND_VERSION) BTCD_VERSION=$(BTCD_VERSION) scripts/build-lnd.sh

image: deps build
	$(BIN) image build --image $(IMAGE)

# The image the session-network scripts run real jobs in: Open MPI,
# mpi4py and iperf3 on top of the default recipe.
test-image: deps build
	$(BIN) image build --image $(TEST_IMAGE) --packages $(TEST_PACKAGES)

# The main job on the embedded default: two providers on this machine, four
# hosts rented from them. Ctrl-C ends it.
demo: deps runsc image build
	$(BIN) demo -n 4

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The meter's accuracy tests and the bench's stability tests measure CPU
# time and work per second: they run after the rest, one package at a time,
# so other packages' tests on the same two cores do not skew them.
TIMED_PKGS := ./meter ./bench
test: deps runsc lnd image test-image build fmt-check vet
	ZENNET_AGENT_BINARY=$(abspath $(BIN)) $(GO) test -race -count=1 -timeout 30m -skip TestScriptsAlone $$($(GO) list ./... | grep -v -e '/meter$$' -e '/bench$$')
	ZENNET_AGENT_BINARY=$(abspath $(BIN)) $(GO) test -race -count=1 -p 1 -timeout 10m $(TIMED_PKGS)
	ZENNET_AGENT_BINARY=$(abspath $(BIN)) $(GO) test -race -count=1 -timeout 20m -run TestScriptsAlone ./cmd/zennet

# Speed and memory, each against a baseline measured in the same run:
# leases through a provider vs bare runsc sandboxes (time to start N, idle
# PSS per lease), renting N hosts from a market of four providers until all
# answer ssh vs N bare sandboxes, a twenty-provider market from nothing to a
# renter's first host, the session network (iperf3 and a TCP
# ping-pong between hosts on one provider and on two) vs two bare sandboxes
# on a veth bridge, a meter sample vs reading the raw files, network setup,
# an SSH channel's throughput with its connections coalesced vs plain,
# 200 MB each way over ssh to a host vs OpenSSH's sshd on loopback,
# zennet --version on a terminal that answers nothing vs to a pipe.
# OpenSSH's sshd is the baseline of BenchmarkSSHTransfer.
BENCH_APT_PACKAGES := openssh-server
bench-deps:
	@missing=""; for p in $(BENCH_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "make: need root to apt-get install$$missing" >&2; exit 1; fi; \
	  echo "make: apt-get install$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

bench: deps bench-deps runsc lnd image test-image build
	ZENNET_AGENT_BINARY=$(abspath $(BIN)) $(GO) test -run '^$$' -bench LeaseStart -benchtime=1x -timeout 30m ./sshgate
	ZENNET_AGENT_BINARY=$(abspath $(BIN)) $(GO) test -run '^$$' -bench 'MarketStart/N=100$$' -benchtime=1x -timeout 30m ./cmd/zennet
	ZENNET_AGENT_BINARY=$(abspath $(BIN)) $(GO) test -run '^$$' -bench 'MarketJoin' -benchtime=1x -timeout 10m ./cmd/zennet
	ZENNET_AGENT_BINARY=$(abspath $(BIN)) $(GO) test -run '^$$' -bench 'HostStart' -benchtime=1x -timeout 30m ./cmd/zennet
	ZENNET_AGENT_BINARY=$(abspath $(BIN)) $(GO) test -run '^$$' -bench 'ClusterNet' -benchtime=1x -timeout 30m ./cmd/zennet
	ZENNET_AGENT_BINARY=$(abspath $(BIN)) $(GO) test -run '^$$' -bench 'SSHTransfer' -benchtime=1x -timeout 30m ./cmd/zennet
	$(GO) test -run '^$$' -bench 'VersionOnSilentTerminal' -benchtime=20x -timeout 10m ./cmd/zennet
	$(GO) test -run '^$$' -bench Sample -benchtime=200x -timeout 30m ./meter | awk -f scripts/benchratio.awk
	$(GO) test -run '^$$' -bench . -benchtime=200x -timeout 30m ./netsandbox
	$(GO) test -run '^$$' -bench . -benchtime=100x -timeout 30m ./pay/
	$(GO) test -run '^$$' -bench SSHChannel -benchtime=1x -timeout 10m ./internal/coalesce
	$(GO) test -run '^$$' -bench Tunnel -benchtime=1x -timeout 10m ./sshgate
	$(GO) test -run '^$$' -bench MarketScale -benchtime=1x -timeout 20m ./p2p

# The fairness of the prices measured for real (issues 7, 19; docs/pricing.md,
# "Measured fairness"): five sandboxes alive together on one CPU (the
# reference, a second like it, a 0.5-CPU quota with and without a CPU-hungry
# neighbour, ptrace), each calibration step on every arm in turn, the suite
# three times; then each job on the reference and a test arm seconds apart,
# ten pairs; prints the bill ratios (CPU-seconds, the tariff, the model,
# wall-seconds), the noise bands and the goals, and writes the report, the
# pairs and the sets to $(BENCH_OUT). About 27 minutes on this machine under
# load; '--check' in FAIRNESS_FLAGS exits non-zero when a goal is not met.
# FAIRNESS_FLAGS adds flags, e.g. '--pairs 20', '--replicates 5', '--check'.
BENCH_OUT ?= bench-out
bench-pricing: runsc image build
	$(BIN) bench fairness -o $(BENCH_OUT) --agent-binary $(abspath $(BIN)) $(FAIRNESS_FLAGS)

clean:
	rm -rf bin
