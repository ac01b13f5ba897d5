// Command etcdgrpc drives an etcd cluster through its native gRPC client
// (go.etcd.io/etcd/client/v3) with the same closed-loop load as httpload
// (bench/compare/loadgen): -c workers, one request in flight each, uniform
// keys, -size byte values, for -d. compare.sh runs it next to httpload's
// JSON-gateway rows, so the comparison shows etcd as its own clients see
// it, not only through the gateway's extra hop.
//
//	etcdgrpc -op put -endpoints 127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793
//
// Each worker has a client of its own, on one endpoint (round-robin), so
// there are as many connections as with httpload. Gets are linearizable
// ranges, etcd's default.
//
// It is a module of its own, so the etcd client and gRPC stay out of
// quorumkv's dependencies.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/bench/compare/loadgen"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func main() {
	cfg := loadgen.Flags("127.0.0.1:2379")
	flag.Parse()
	if cfg.Label == "" {
		cfg.Label = "etcd-grpc"
	}
	eps := strings.Split(cfg.Endpoints, ",")
	for i, e := range eps {
		eps[i] = strings.TrimPrefix(e, "http://")
	}
	clients := make([]*clientv3.Client, cfg.Workers)
	for w := range clients {
		c, err := clientv3.New(clientv3.Config{
			Endpoints:   []string{eps[w%len(eps)]},
			DialTimeout: 5 * time.Second,
			Logger:      zap.NewNop(),
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "etcdgrpc: connect to %s: %v\n", eps[w%len(eps)], err)
			os.Exit(1)
		}
		defer c.Close()
		clients[w] = c
	}
	value := string(bytes.Repeat([]byte("v"), cfg.ValueSize))
	var do func(w int, key string) error
	switch cfg.Op {
	case "put":
		do = func(w int, key string) error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := clients[w].Put(ctx, key, value)
			return err
		}
	case "get":
		do = func(w int, key string) error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := clients[w].Get(ctx, key)
			return err
		}
	default:
		fmt.Fprintf(os.Stderr, "etcdgrpc: -op %q: want put or get\n", cfg.Op)
		os.Exit(2)
	}
	loadgen.Run(cfg, do)
}
