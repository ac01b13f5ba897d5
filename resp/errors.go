package resp

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/quorumkv/quorumkv/replication"
	"github.com/quorumkv/quorumkv/vclock"
	"github.com/quorumkv/quorumkv/wire"
	"github.com/tidwall/redcon"
)

// requestError is a request this package refuses before it reaches the KV
// (a bad key, a value over the limit, an unknown level).
type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{fmt.Sprintf(format, args...)}
}

// siblingsError is a plain GET (or MGET) of a key that holds concurrent
// values.
type siblingsError struct {
	key []byte
	n   int
}

func (e *siblingsError) Error() string {
	return fmt.Sprintf("key %q has %d concurrent values (siblings); read them all with QGET key, then write the value you want with QSET key value CONTEXT <context from QGET>", clip(e.key, 64), e.n)
}

// replyError maps an error to the text of a Redis error reply and to the
// outcome reported to Config.Observe. It is the one place where errors
// become replies. The first word is the error code clients see:
//
//	ERR              a bad request (syntax, key, value size, level, context)
//	SIBLINGS         a plain GET met concurrent values; use QGET
//	TOOMANYSIBLINGS  a write would pass the sibling limit
//	UNAVAILABLE      fewer replicas than the level needs answered
//	TIMEOUT          the deadline passed; the outcome is unknown
func (s *Server) replyError(err error) (msg, outcome string) {
	var (
		re *requestError
		se *siblingsError
		qe *replication.QuorumError
	)
	switch {
	case errors.As(err, &re):
		return "ERR " + re.msg, wire.CodeBadRequest
	case errors.As(err, &se):
		return "SIBLINGS " + se.Error(), wire.CodeConflict
	case errors.Is(err, vclock.ErrBadContext):
		return "ERR the CONTEXT does not decode; pass the context an earlier QGET answered, unchanged", wire.CodeBadRequest
	case errors.Is(err, replication.ErrBadRequest):
		return "ERR " + strings.TrimPrefix(err.Error(), replication.ErrBadRequest.Error()+": "), wire.CodeBadRequest
	case errors.Is(err, replication.ErrTooManySiblings):
		return "TOOMANYSIBLINGS " + strings.TrimPrefix(err.Error(), replication.ErrTooManySiblings.Error()+": ") +
			" (resolve them: QGET the key, then QSET it with the context QGET answered)", wire.CodeConflict
	case errors.As(err, &qe):
		if qe.Timeout {
			return fmt.Sprintf("TIMEOUT outcome unknown: the %s had %d of the %d replica answers it needed when the deadline passed", qe.Op, qe.Acked, qe.Needed), wire.CodeTimeout
		}
		if qe.Refused() {
			return "UNAVAILABLE " + qe.Error(), wire.CodeUnavailable
		}
		msg := fmt.Sprintf("UNAVAILABLE needed %d replicas, %d answered (%s)", qe.Needed, qe.Acked, qe.Op)
		if qe.Op == "write" {
			msg += "; the write may still have reached some replicas and become visible later"
		}
		return msg, wire.CodeUnavailable
	case errors.Is(err, replication.ErrUnavailable):
		return "UNAVAILABLE not enough replicas answered", wire.CodeUnavailable
	case errors.Is(err, replication.ErrTimeout):
		return "TIMEOUT outcome unknown", wire.CodeTimeout
	case errors.Is(err, replication.ErrClosed):
		return "ERR the node is shutting down", wire.CodeUnavailable
	case errors.Is(err, context.Canceled) && s.ctx.Err() != nil:
		return "ERR the node is shutting down; the outcome is unknown", wire.CodeUnavailable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "TIMEOUT outcome unknown: the request timed out", wire.CodeTimeout
	}
	return "ERR internal error: " + err.Error(), wire.CodeInternal
}

// appendError appends the error reply for err, logging errors that are not
// the client's or the cluster's doing.
func (c *client) appendError(out []byte, err error) []byte {
	msg, outcome := c.s.replyError(err)
	if outcome == wire.CodeInternal {
		c.s.log.Error("resp: request failed", "peer", c.conn.RemoteAddr().String(), "err", err)
	}
	return redcon.AppendError(out, msg)
}
