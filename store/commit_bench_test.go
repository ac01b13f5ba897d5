package store

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/quorumkv/quorumkv/vclock"
)

// BenchmarkUpdateParallel measures concurrent single-key Updates (100-byte
// values, many goroutines, as under 64 clients) with and without the group
// committer, with Sync off and on:
//
//	go test -run - -bench UpdateParallel -benchmem -cpu 2 ./store
func BenchmarkUpdateParallel(b *testing.B) {
	for _, sync := range []bool{false, true} {
		for _, group := range []bool{false, true} {
			b.Run(fmt.Sprintf("sync=%v/group=%v", sync, group), func(b *testing.B) {
				cfg := DefaultConfig()
				cfg.Dir = b.TempDir()
				cfg.Sync = sync
				s, err := Open(cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				if !group {
					s.group = nil
				}
				value := make([]byte, 100)
				var n atomic.Int64
				b.SetParallelism(32)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						key := fmt.Appendf(nil, "k%d", n.Add(1)%100000)
						if _, err := s.Update(int(key[1]), key, func(cur vclock.Object, _ bool) (vclock.Object, bool, error) {
							next, _ := cur.Update("n1.x", cur.Clock, value, false)
							return next, true, nil
						}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
