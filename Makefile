# quorumkv — common tasks. `make test` is what CI runs; `make fault` runs the
# multi-host fault suite in Docker (FAULT_QUICK=1 for the short version).

GO ?= go

.PHONY: build test race vet fmt fault image bench clean

build:
	CGO_ENABLED=0 $(GO) build -o bin/quorumkv ./cmd/quorumkv

test:
	$(GO) test -race ./...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)

clean:
	rm -rf bin fault-out fault-results.json
