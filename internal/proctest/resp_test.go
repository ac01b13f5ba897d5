package proctest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/proctest"
	"github.com/redis/go-redis/v9"
)

// TestSIGTERMAnswersRESPCommandsUnderWay: Redis clients write through one
// node's RESP port while it gets SIGTERM. The node drains the port: every
// command it had started is answered, so a SET that got no answer (its
// connection closed under it) never ran, and every acknowledged SET reads
// back. Cancelling the commands under way instead (resp.Server.Close)
// leaves SETs that ran, in part or whole, without an answer.
func TestSIGTERMAnswersRESPCommandsUnderWay(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	respAddr := proctest.FreePort(t)
	c := proctest.Start(t, proctest.Options{Nodes: 3, NodeArgs: func(i int) []string {
		if i == 0 {
			return []string{"--resp", respAddr}
		}
		return nil
	}})
	cl := c.Client()
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: respAddr, PoolSize: 16, MaxRetries: -1, ReadTimeout: 10 * time.Second})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}

	var (
		mu      sync.Mutex
		acked   = map[string]string{}
		unknown []string // no answer, or "the outcome is unknown"
		wg      sync.WaitGroup
	)
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("r%d-%d", w, i)
				err := rdb.Set(ctx, key, "v-"+key, 0).Err()
				mu.Lock()
				if err == nil {
					acked[key] = "v-" + key
				} else if !strings.Contains(err.Error(), "refused") { // refused: never sent
					unknown = append(unknown, key)
				}
				mu.Unlock()
				if err != nil {
					return // the port is closing or closed
				}
			}
		})
	}
	time.Sleep(time.Second)
	if err := c.Term(0); err != nil {
		t.Fatalf("SIGTERM: %v, want exit status 0", err)
	}
	wg.Wait()
	t.Logf("%d SETs acknowledged before the port closed", len(acked))
	if len(acked) < 50 {
		t.Fatalf("only %d SETs acknowledged", len(acked))
	}
	for key, want := range acked {
		at := 1 + len(key)%2
		res, err := cl.At(at).Get(ctx, []byte(key), client.Options{Consistency: "quorum"})
		if err != nil || !res.Found || len(res.Values) != 1 || string(res.Values[0]) != want {
			t.Fatalf("acknowledged SET %s via node %d: %v found=%v %q", key, at, err, res.Found, res.Values)
		}
	}
	// Back with its data, every replica answers: a SET without an answer
	// must be nowhere.
	c.Restart(0)
	c.WaitMembers(3, 30*time.Second)
	t.Logf("%d SETs got no answer", len(unknown))
	for _, key := range unknown {
		res, err := cl.At(1).Get(ctx, []byte(key), client.Options{Consistency: "all"})
		if err != nil {
			t.Fatalf("read %s at all: %v", key, err)
		}
		if res.Found {
			t.Errorf("SET %s got no answer but was applied", key)
		}
	}
}
