package node

import "testing"

func TestSameHost(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"127.0.0.1:7946", "127.0.0.1:7947", true},
		{"127.0.0.1:7946", "127.0.0.2:7946", true}, // every loopback address is this host
		{"[::1]:7946", "127.0.0.1:7946", true},
		{"10.0.0.1:7946", "10.0.0.1:8000", true},
		{"10.0.0.1:7946", "10.0.0.2:7946", false},
		{"10.0.0.1:7946", "127.0.0.1:7946", false},
		{"db1:7946", "db1:7947", true},
		{"db1:7946", "db2:7946", false},
		{"10.0.0.1", "10.0.0.1:7946", false}, // no port: not an address
	} {
		if got := sameHost(tc.a, tc.b); got != tc.want {
			t.Errorf("sameHost(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestCoreShare(t *testing.T) {
	for _, tc := range []struct{ cores, nodes, want int }{
		{2, 1, 2},
		{2, 2, 1},
		{2, 3, 1},
		{2, 5, 1},
		{4, 3, 1},
		{8, 3, 3},
		{16, 3, 5},
		{16, 1, 16},
		{4, 0, 4},
	} {
		if got := CoreShare(tc.cores, tc.nodes); got != tc.want {
			t.Errorf("CoreShare(%d cores, %d nodes) = %d, want %d", tc.cores, tc.nodes, got, tc.want)
		}
	}
}
