package client

import (
	"net/url"
	"strconv"

	"github.com/quorumkv/quorumkv/wire"
)

// MaxKeyBytes is the longest key the API accepts.
const MaxKeyBytes = 1024

// unreserved marks the bytes RFC 3986 never needs escaped: A-Z a-z 0-9 - . _ ~.
var unreserved = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'], t['.'], t['_'], t['~'] = true, true, true, true
	return t
}()

const upperHex = "0123456789ABCDEF"

// EscapeKey percent-encodes key as one path segment: every byte outside
// A-Z a-z 0-9 - . _ ~ becomes %XX (upper-case hex), so '/' is %2F, ' ' is
// %20 and non-UTF-8 bytes survive. The keys "." and ".." are sent as %2E and
// %2E%2E, because as literal dot segments HTTP servers (Go's ServeMux among
// them) would clean them out of the path.
func EscapeKey(key []byte) string {
	s, _ := escapeKey(key)
	return s
}

// escapeKey returns the escaped key and whether any byte needed escaping.
func escapeKey(key []byte) (string, bool) {
	switch string(key) {
	case ".":
		return "%2E", true
	case "..":
		return "%2E%2E", true
	}
	n := 0
	for _, b := range key {
		if !unreserved[b] {
			n++
		}
	}
	if n == 0 {
		return string(key), false
	}
	buf := make([]byte, 0, len(key)+2*n)
	for _, b := range key {
		if unreserved[b] {
			buf = append(buf, b)
		} else {
			buf = append(buf, '%', upperHex[b>>4], upperHex[b&15])
		}
	}
	return string(buf), true
}

func checkKey(key []byte) error {
	switch {
	case len(key) == 0:
		return &Error{Code: wire.CodeBadRequest, Message: "the key is empty; keys are 1 to 1024 bytes", Needed: -1, Acked: -1}
	case len(key) > MaxKeyBytes:
		return &Error{Code: wire.CodeBadRequest, Message: "the key is " + strconv.Itoa(len(key)) + " bytes; keys are 1 to 1024 bytes", Needed: -1, Acked: -1}
	}
	return nil
}

// keyURL is the URL of prefix+key on ep ("/v1/kv/" or "/v1/explain/"). The
// path is set both decoded (Path) and, when it differs from what net/url
// would produce, exactly encoded (RawPath), so net/http sends our encoding
// byte for byte.
func (ep *endpoint) keyURL(prefix string, key []byte, query string) *url.URL {
	u := &url.URL{Scheme: ep.scheme, Host: ep.host, RawQuery: query}
	esc, escaped := escapeKey(key)
	if !escaped {
		u.Path = ep.path + prefix + esc
		u.RawPath = ep.rawPath + prefix + esc
		if ep.rawPath == ep.path {
			u.RawPath = ""
		}
		return u
	}
	u.Path = ep.path + prefix + string(key)
	u.RawPath = ep.rawPath + prefix + esc
	return u
}

// pathURL is the URL of a fixed, already clean path on ep.
func (ep *endpoint) pathURL(p string) *url.URL {
	u := &url.URL{Scheme: ep.scheme, Host: ep.host, Path: ep.path + p}
	if ep.rawPath != ep.path {
		u.RawPath = ep.rawPath + p
	}
	return u
}

// query renders the consistency parameters of o. read selects r= over w=.
func (o Options) query(read bool) string {
	n := o.W
	name := "w="
	if read {
		n, name = o.R, "r="
	}
	if o.Consistency == "" && n == 0 {
		return ""
	}
	buf := make([]byte, 0, 32)
	if o.Consistency != "" {
		buf = append(buf, "consistency="...)
		buf = append(buf, url.QueryEscape(o.Consistency)...)
	}
	if n != 0 {
		if len(buf) > 0 {
			buf = append(buf, '&')
		}
		buf = append(buf, name...)
		buf = strconv.AppendInt(buf, int64(n), 10)
	}
	return string(buf)
}
