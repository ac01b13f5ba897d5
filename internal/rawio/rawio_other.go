//go:build !linux

package rawio

import "net"

// Wrap returns nc: the raw path is built for Linux only.
func Wrap(nc net.Conn) net.Conn { return nc }

// WrapListener returns l.
func WrapListener(l net.Listener) net.Listener { return l }
