package main

import "testing"

func TestHostShare(t *testing.T) {
	for _, tc := range []struct{ cores, peers, want int }{
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
		if got := hostShare(tc.cores, tc.peers); got != tc.want {
			t.Errorf("hostShare(%d cores, %d nodes) = %d, want %d", tc.cores, tc.peers, got, tc.want)
		}
	}
}
