# quorumkv image, built from source in a Go builder stage (needs access to
# a registry for golang and to the Go module proxy). The result is the
# static binary alone on an empty base, run as an unprivileged user.
#
#   docker build -t quorumkv:latest .
#
# Without registry access, build deploy/Dockerfile.scratch from a locally
# compiled binary instead (see that file). docs/operations.md explains the
# flags, ports and volumes.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/quorumkv ./cmd/quorumkv \
 && mkdir -p /out/data

FROM scratch
COPY --from=build /out/quorumkv /quorumkv
# The data directory belongs to the unprivileged user, so that a named
# volume mounted there is writable.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
VOLUME ["/data"]
# 8080 client HTTP, 9090 node-to-node RPC, 7946 gossip (TCP and UDP),
# 6379 Redis protocol when --resp is given.
EXPOSE 8080 9090 7946 7946/udp 6379
ENTRYPOINT ["/quorumkv"]
CMD ["server", "--data", "/data", "--http", "0.0.0.0:8080"]
