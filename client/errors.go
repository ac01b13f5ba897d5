package client

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/quorumkv/quorumkv/wire"
)

// Sentinels an *Error unwraps to, one per error code of the API; match them
// with errors.Is.
var (
	// ErrBadRequest: the request was malformed (unknown level, r/w out of
	// range, both consistency and r/w, bad key, undecodable context). The
	// server changed nothing.
	ErrBadRequest = errors.New("client: bad request")
	// ErrTooLarge: the value is over the server's limit. Nothing changed.
	ErrTooLarge = errors.New("client: value too large")
	// ErrUnavailable: fewer replicas than the level needs answered
	// (Error.Needed and Error.Acked say how many). A write may still be
	// visible later on the replicas that took it.
	ErrUnavailable = errors.New("client: not enough replicas available")
	// ErrTimeout: the server gave up waiting; the outcome is unknown.
	ErrTimeout = errors.New("client: server timed out, outcome unknown")
	// ErrUnauthorized: the bearer token is missing or wrong.
	ErrUnauthorized = errors.New("client: unauthorized")
	// ErrNotFound: an admin or explain resource does not exist (never used
	// for a missing key: Get reports that as Found=false).
	ErrNotFound = errors.New("client: not found")
	// ErrConflict: the server refused the request because of the node's or
	// the key's current state.
	ErrConflict = errors.New("client: conflict")
	// ErrServer: an internal server error or an answer this client does not
	// understand; the outcome of a write is unknown.
	ErrServer = errors.New("client: server error")
)

// Error is a non-success answer from a node. It unwraps to the sentinel of
// its Code (ErrBadRequest, ErrUnavailable, …).
type Error struct {
	// Status is the HTTP status, or 0 when the client refused the request
	// before sending it (a key that is empty or too long).
	Status int
	// Code is the API's error code (wire.CodeUnavailable, …). When the body
	// carried none (a proxy's answer, say), it is derived from Status.
	Code string
	// Message is the server's explanation, meant for a person.
	Message string
	// Needed and Acked are the replica counts of an unavailable or timeout
	// answer; -1 when absent.
	Needed, Acked int
	// Endpoint is the base URL of the node that answered ("" when the
	// request was not sent).
	Endpoint string
	// Receipt is the consistency receipt of the answer, if it carried one.
	Receipt Receipt
}

// Error renders e as "client: <code> (<status>) from <endpoint>: <message>
// (needed N, acked M)".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("client: ")
	b.WriteString(e.Code)
	if e.Status != 0 {
		b.WriteString(" (")
		b.WriteString(strconv.Itoa(e.Status))
		b.WriteString(")")
	}
	if e.Endpoint != "" {
		b.WriteString(" from ")
		b.WriteString(e.Endpoint)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Needed >= 0 || e.Acked >= 0 {
		b.WriteString(" (needed ")
		b.WriteString(countString(e.Needed))
		b.WriteString(", acked ")
		b.WriteString(countString(e.Acked))
		b.WriteString(")")
	}
	return b.String()
}

func countString(n int) string {
	if n < 0 {
		return "?"
	}
	return strconv.Itoa(n)
}

// Unwrap returns the sentinel for e's Code (or, for an unknown code, for
// its Status).
func (e *Error) Unwrap() error {
	switch e.Code {
	case wire.CodeBadRequest:
		return ErrBadRequest
	case wire.CodeTooLarge:
		return ErrTooLarge
	case wire.CodeUnavailable:
		return ErrUnavailable
	case wire.CodeTimeout:
		return ErrTimeout
	case wire.CodeUnauthorized:
		return ErrUnauthorized
	case wire.CodeNotFound:
		return ErrNotFound
	case wire.CodeConflict:
		return ErrConflict
	case wire.CodeInternal:
		return ErrServer
	}
	switch codeForStatus(e.Status) {
	case wire.CodeBadRequest:
		return ErrBadRequest
	case wire.CodeTooLarge:
		return ErrTooLarge
	case wire.CodeUnavailable:
		return ErrUnavailable
	case wire.CodeTimeout:
		return ErrTimeout
	case wire.CodeUnauthorized:
		return ErrUnauthorized
	case wire.CodeNotFound:
		return ErrNotFound
	case wire.CodeConflict:
		return ErrConflict
	}
	return ErrServer
}

// codeForStatus is the API code a status stands for when a body names none.
func codeForStatus(status int) string {
	switch {
	case status == http.StatusBadRequest:
		return wire.CodeBadRequest
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return wire.CodeUnauthorized
	case status == http.StatusNotFound:
		return wire.CodeNotFound
	case status == http.StatusConflict:
		return wire.CodeConflict
	case status == http.StatusRequestEntityTooLarge:
		return wire.CodeTooLarge
	case status == http.StatusServiceUnavailable:
		return wire.CodeUnavailable
	case status == http.StatusGatewayTimeout:
		return wire.CodeTimeout
	case status >= 400 && status < 500:
		return wire.CodeBadRequest
	}
	return wire.CodeInternal
}

// Rejected reports whether err is an answer known to have changed nothing:
// bad request, too large or unauthorized (including requests the client
// refused to send). Any other failed write — unavailable, timeout, server
// error, or a transport error with no answer at all — may have taken effect
// on some replicas.
func Rejected(err error) bool {
	return errors.Is(err, ErrBadRequest) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrUnauthorized)
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// errorFrom turns a non-success response into an *Error, reading (and
// leaving for the caller to close) its body. A failure to read the body is
// a transport error and is returned as such.
func (c *Client) errorFrom(resp *http.Response) error {
	e := &Error{
		Status:   resp.StatusCode,
		Needed:   -1,
		Acked:    -1,
		Endpoint: c.ep.base,
		Receipt:  parseReceipt(resp.Header),
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return transportError(resp.Request, "reading the error answer", err)
	}
	var eb wire.ErrorBody
	if len(body) > 0 && json.Unmarshal(body, &eb) == nil {
		e.Code, e.Message = eb.Code, eb.Error
		if eb.Needed != nil {
			e.Needed = *eb.Needed
		}
		if eb.Acked != nil {
			e.Acked = *eb.Acked
		}
	} else {
		e.Message = strings.TrimSpace(string(body))
	}
	if e.Code == "" {
		e.Code = codeForStatus(resp.StatusCode)
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}
