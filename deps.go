//go:build tools

package quorumkv

import (
	_ "github.com/HdrHistogram/hdrhistogram-go"
	_ "github.com/anishathalye/porcupine"
	_ "github.com/dgraph-io/badger/v4"
	_ "github.com/hashicorp/memberlist"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/spf13/cobra"
	_ "github.com/tidwall/redcon"
	_ "github.com/vmihailenco/msgpack/v5"
	_ "golang.org/x/term"
	_ "github.com/BurntSushi/toml"
)
