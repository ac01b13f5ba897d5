package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/quorumkv/quorumkv/client"
)

// A read-modify-write that carries the read's context, so the write
// supersedes exactly what was read, and resolves siblings by keeping the
// longest value.
func Example() {
	c, err := client.New(client.Config{Endpoints: []string{"http://127.0.0.1:7000", "http://127.0.0.1:7001"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	key := []byte("cart/alice")

	res, err := c.Get(ctx, key, client.Options{Consistency: client.LevelQuorum})
	if err != nil {
		log.Fatal(err)
	}
	var merged []byte
	for _, v := range res.Values {
		if len(v) > len(merged) {
			merged = v
		}
	}
	// Write through the second node; any node can coordinate.
	w, err := c.At(1).Put(ctx, key, append(merged, '+'), client.Options{W: 2, Context: res.Context})
	var e *client.Error
	switch {
	case errors.Is(err, client.ErrUnavailable) && errors.As(err, &e):
		fmt.Printf("only %d of %d replicas took the write; it may still appear later\n", e.Acked, e.Needed)
	case client.Rejected(err):
		log.Fatal(err) // nothing changed: fix the request
	case err != nil:
		fmt.Println("outcome unknown:", err)
	default:
		fmt.Println("written to", w.Receipt.Acks, "replicas")
	}
}
