# quorumkv — common tasks. `make test` is what CI runs; `make fault` runs the
# multi-host fault suite in Docker (FAULT_QUICK=1 for the short version).

GO ?= go
# What `quorumkv version` and /v1/status report for binaries built here.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X github.com/quorumkv/quorumkv/node.version=$(VERSION)

.PHONY: build test vet fault image clean

build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o bin/quorumkv ./cmd/quorumkv

test:
	$(GO) test -race ./...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)

# The fault suite's node image: FROM scratch around a static quorumkv, so it
# builds without a registry. The legacy builder needs no buildx plugin.
FAULT_IMAGE ?= quorumkv-fault:latest

image:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o fault/build/quorumkv ./cmd/quorumkv
	DOCKER_BUILDKIT=0 docker build -q -t $(FAULT_IMAGE) fault

# Runs the multi-host fault suite (docs/reliability.md): writes
# fault-results.json and keeps failed histories in fault-out/. Whatever
# happens, the suite's containers, volumes and network are removed.
fault: image
	CGO_ENABLED=0 $(GO) build -o fault/build/faultsuite ./fault/cmd/faultsuite
	rm -rf fault-out
	fault/build/faultsuite -image $(FAULT_IMAGE) -results fault-results.json -out fault-out; \
	  rc=$$?; fault/build/faultsuite -cleanup; exit $$rc

clean:
	rm -rf bin fault-out fault-results.json
