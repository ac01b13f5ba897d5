package wire

import (
	"encoding/json"
	"strings"
	"testing"
)

// An explained replica always carries "error": null when it answered and
// the message when it did not, and both read back.
func TestExplainReplicaErrorIsAlwaysThere(t *testing.T) {
	for _, want := range []ExplainReplica{
		{Node: "n1", Role: "primary", Found: true, Siblings: 1, ValueHashes: []string{"ab"}},
		{Node: "n2", Role: "primary", Error: "transport: peer unreachable"},
	} {
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		wantField := `"error":null`
		if want.Error != "" {
			wantField = `"error":"transport: peer unreachable"`
		}
		if !strings.Contains(string(b), wantField) || strings.Count(string(b), `"error"`) != 1 {
			t.Errorf("%s: want one %s", b, wantField)
		}
		var got ExplainReplica
		if err := json.Unmarshal(b, &got); err != nil || got.Error != want.Error || got.Node != want.Node || got.Found != want.Found {
			t.Errorf("read back %+v %v, want %+v", got, err, want)
		}
	}
}
