// Package rawio reads and writes TCP connections without the Go
// scheduler's system-call bookkeeping.
//
// A Go program that reads or writes a socket through net.Conn enters the
// system call through syscall.Syscall, which tells the scheduler it may
// block: the runtime then wakes its monitor thread (sysmon) if that thread
// sleeps, so that a processor stuck in the call can be handed to another
// thread. A node that serves a few thousand small messages a second goes
// idle between them, sysmon goes to sleep each time, and each message's
// first read wakes it again: a futex wake, a short sleep, another futex
// wait, each a context switch. perf on a replica under one-key
// redis-benchmark load put a quarter of its CPU there.
//
// A socket that net created is non-blocking, so a read or write on it
// never waits in the kernel; it returns EAGAIN instead, and the goroutine
// parks on the runtime's network poller. Conn makes those reads and writes
// with syscall.RawSyscall inside syscall.RawConn's callbacks: the poller,
// deadlines and Close work exactly as for the net.Conn it wraps, and the
// scheduler is not told about calls that cannot block.
//
// Built with -race, Conn makes the same calls through syscall.Read and
// syscall.Write instead, which tell the race detector that what one end
// wrote happened before the other end read it (sys_race.go).
//
// Wrap works on Linux; elsewhere it returns the connection unchanged.
package rawio
