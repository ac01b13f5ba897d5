package store

import "golang.org/x/sys/unix"

// dropPages removes b's pages from the process's resident set. b must be a
// shared file mapping: the pages stay in the page cache (dirty ones are
// written back as usual), and the next access maps them again.
func dropPages(b []byte) { _ = unix.Madvise(b, unix.MADV_DONTNEED) }
