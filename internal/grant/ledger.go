package grant

import (
	"context"
	"errors"
	"time"
)

// Errors of a Ledger, for errors.Is.
var (
	ErrNotFound = errors.New("grant not found")
	ErrExists   = errors.New("grant already exists")
	// ErrNoChange, returned by an Update function, skips the write.
	ErrNoChange = errors.New("no change")
	// ErrLimit is wrapped by a Create or Update refused because the
	// entitlement's concurrency limit is reached (Grant.ConcurrencyLimit).
	ErrLimit = errors.New("concurrency limit reached")
	// ErrDuplicateRequest is wrapped by a Create whose RequestKey has been
	// recorded already (by an earlier Create or by Once).
	ErrDuplicateRequest = errors.New("request already recorded")
)

// Query selects grants. Zero fields do not filter. Results are ordered by
// CreateTime, newest first.
type Query struct {
	Requester   string
	Entitlement string
	States      []State
	// Approver selects grants whose Approvers include this principal
	// string (e.g. "user:carol@example.com" or "group:managers@example.com").
	Approvers []string
	// Unpublished selects grants with at least one unpublished event.
	Unpublished bool
	// EndBefore selects grants whose EndTime is set and before this time.
	EndBefore time.Time
	Limit     int
}

// Ledger stores grants and idempotency keys. Implementations: SQLite (the
// embedded default) and Firestore (Google Cloud); one contract test suite
// runs against both.
type Ledger interface {
	// Create stores a new grant (Version 1); ErrExists if the ID is taken.
	// A RequestKey is recorded as an idempotency key in the same
	// transaction (ErrDuplicateRequest if it is there already, and
	// nothing is written). A grant created in a state that HoldsSlot with
	// a ConcurrencyLimit > 0 is refused with ErrLimit when that many other
	// grants of its entitlement hold a slot — checked atomically, so
	// concurrent Creates never exceed the limit.
	Create(ctx context.Context, g *Grant) error
	// Get returns a copy of the grant; ErrNotFound if there is none.
	Get(ctx context.Context, id string) (*Grant, error)
	// Update reads the grant, applies fn to a copy and writes it back if
	// fn returns nil, atomically: a concurrent write makes it re-read and
	// re-apply fn. ErrNoChange from fn skips the write and returns the
	// grant as read (with a nil error). Version increases by one per write.
	// A write that moves the grant from a state that does not HoldsSlot
	// into one that does is subject to its ConcurrencyLimit as in Create,
	// atomically (ErrLimit, and nothing is written); other writes are not
	// re-checked, so lowering a limit never cuts an active grant short.
	Update(ctx context.Context, id string, fn func(*Grant) error) (*Grant, error)
	// List returns the grants matching q.
	List(ctx context.Context, q Query) ([]*Grant, error)
	// Once records an idempotency key and reports whether this was the
	// first time (true) or the key was already there (false). Keys expire
	// after ttl.
	Once(ctx context.Context, key string, ttl time.Duration) (bool, error)
	Close() error
}
