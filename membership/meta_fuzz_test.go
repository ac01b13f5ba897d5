package membership

import "testing"

// FuzzDecodeMeta: gossip metadata arrives from anyone who can reach the
// gossip port (without --gossip-key); no input may crash the node.
func FuzzDecodeMeta(f *testing.F) {
	b, _ := encodeMeta(Meta{ID: "n1", RPCAddr: "127.0.0.1:9090", Replicas: 3, Partitions: 1024})
	f.Add(b)
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xc6, 0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeMeta(b)
	})
}
