//go:build !linux

package store

// dropPages does nothing where madvise(MADV_DONTNEED) is not known to keep
// a shared file mapping's contents.
func dropPages([]byte) {}
