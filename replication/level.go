package replication

import (
	"fmt"
	"strconv"
)

// Level is a consistency level.
type Level int

// The consistency levels. Count means "wait for Consistency.Count replicas".
const (
	Quorum Level = iota
	One
	All
	Strong
	Count
)

func (l Level) String() string {
	switch l {
	case One:
		return "one"
	case Quorum:
		return "quorum"
	case All:
		return "all"
	case Strong:
		return "strong"
	case Count:
		return "count"
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// ParseLevel parses the consistency query parameter.
func ParseLevel(s string) (Level, error) {
	switch s {
	case "one":
		return One, nil
	case "quorum":
		return Quorum, nil
	case "all":
		return All, nil
	case "strong":
		return Strong, nil
	}
	return 0, fmt.Errorf("%w: unknown consistency level %q (use one, quorum, all or strong)", ErrBadRequest, s)
}

// Consistency is the level a request asks for.
type Consistency struct {
	Level Level
	// Count is the number of replicas when Level is Count (from r= or w=).
	Count int
}

// String renders c the way clients write it.
func (c Consistency) String() string {
	if c.Level == Count {
		return strconv.Itoa(c.Count)
	}
	return c.Level.String()
}

// Validate checks c against the replication factor n.
func (c Consistency) Validate(n int) error {
	if c.Level == Count && (c.Count < 1 || c.Count > n) {
		return fmt.Errorf("%w: replica count %d is outside 1..%d (N)", ErrBadRequest, c.Count, n)
	}
	if c.Level < Quorum || c.Level > Count {
		return fmt.Errorf("%w: unknown consistency level", ErrBadRequest)
	}
	return nil
}

// Needed is how many of n replicas must answer.
func (c Consistency) Needed(n int) int {
	switch c.Level {
	case One:
		return 1
	case All:
		return n
	case Count:
		return c.Count
	}
	return n/2 + 1
}
