// Package store keeps one node's data in badger: the object (version vector
// and siblings) of every key it replicates, the hints it holds for other
// nodes, and a little node metadata (the incarnation, counters that must
// survive restarts).
//
// Key layout inside badger:
//
//	'o' | partition (uint16, big endian) | user key  -> msgpack(vclock.Object)
//	'h' | target node id | 0x00 | seq (uint64 BE)     -> msgpack(Hint)
//	'm' | name                                        -> raw bytes
//
// Prefixing objects by partition makes "every key of partition p" one range
// scan, which anti-entropy and ownership transfer need.
//
// Writes to one key are serialised by a striped lock so that a read-modify-
// write (apply a new version, merge an incoming object) is atomic without
// badger transaction conflicts. Different keys commit concurrently, and
// badger groups concurrent commits into one write (and, with Sync, one
// fsync), which is what makes durable writes affordable.
package store
