// Package ledger holds what the grant ledger's implementations share, so
// that SQLite (the embedded default, package sqlite) and Firestore (Google
// Cloud, package firestore) store, copy and select grants identically: one
// contract suite (package ledgertest) runs against both, and a difference
// between them would be a bug that only shows in one place.
//
// The rules both follow:
//   - A grant ID must also be a valid Firestore document ID (CheckID), so an
//     ID accepted locally is never refused in production.
//   - What the ledger returns is what a JSON round trip of the normalized
//     grant gives (Clone): times in UTC with nanoseconds and no monotonic
//     reading, numbers in Inputs as float64, empty slices and maps as nil.
//   - Query results are ordered by CreateTime, newest first, then by ID
//     descending (Firestore's implicit __name__ order), and Match is the
//     single definition of which grants a Query selects.
//   - A concurrency limit counts every grant of the entitlement that holds
//     a slot (grant.State.HoldsSlot), whatever limit it was created or
//     activated under: a limit introduced or lowered in the policy while
//     grants are active refuses new slots until enough of them have
//     ended, and cuts none short. TakesSlot is the single definition of
//     the writes that are checked.
//   - A Create's RequestKey is recorded in the key space of Once, with
//     RequestKeyTTL, in the transaction that stores the grant.
package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jitpipeline/jit/internal/grant"
)

// ErrInvalidID is wrapped by Create's error for an ID no grant can have.
var ErrInvalidID = errors.New("invalid grant ID")

// ErrClaimBusy is the answer of a notification journal's Claim for a key
// someone claimed under a lease that is still running and has not marked
// done: the mail may be on its way, or its sender may have died. The caller
// reports a temporary failure, so the event is redelivered and claims the
// key again once the lease is over — a mail is neither sent twice by
// concurrent deliveries nor lost with a sender that died mid-way.
var ErrClaimBusy = errors.New("claimed by another delivery whose lease has not ended")

// maxIDBytes is Firestore's limit on a document ID.
const maxIDBytes = 1500

// CheckID reports an error wrapping ErrInvalidID unless id can name a
// Firestore document: non-empty, at most 1500 bytes of UTF-8, no "/", not
// "." or "..", and not of the reserved form __…__.
func CheckID(id string) error {
	var problem string
	switch {
	case id == "":
		problem = "empty"
	case len(id) > maxIDBytes:
		problem = fmt.Sprintf("longer than %d bytes", maxIDBytes)
	case !utf8.ValidString(id):
		problem = "not valid UTF-8"
	case strings.Contains(id, "/"):
		problem = `contains "/"`
	case id == "." || id == "..":
		problem = `is "." or ".."`
	case len(id) >= 4 && strings.HasPrefix(id, "__") && strings.HasSuffix(id, "__"):
		problem = "has the reserved form __…__"
	default:
		return nil
	}
	return fmt.Errorf("%w: %q is %s", ErrInvalidID, id, problem)
}

// timeLayout has a fixed width, so that the strings sort as the times do
// (RFC 3339 with trailing zeros trimmed does not: ".5Z" sorts before "Z").
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// FormatTime renders t in UTC with nanoseconds and a fixed width, so that
// string order is time order; the zero time is "".
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

// ParseTime reverses FormatTime.
func ParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("failed to parse time %q: %w", s, err)
	}
	return t.UTC(), nil
}

// RequestKeyTTL is how long Create remembers a grant's RequestKey: 31
// days, the longest Pub/Sub retains a message and so can redeliver it (a
// subscription's message retention, or a seek back into a topic's
// retention, are at most 31 days). An envelope is accepted for minutes
// only, so its key outlives any chance of a valid redelivery by far.
const RequestKeyTTL = 31 * 24 * time.Hour

// slotStates are the states that hold a slot (grant.State.HoldsSlot), for
// queries; TestSlotStates keeps the two in step.
var slotStates = []grant.State{grant.Activating, grant.Active, grant.Revoking, grant.Withdrawing}

// SlotStates returns the states in which a grant holds a slot of its
// entitlement's concurrency limit.
func SlotStates() []grant.State { return slices.Clone(slotStates) }

// TakesSlot reports whether writing after over before (nil for a Create)
// moves the grant into a state that holds a slot: the writes a
// concurrency limit is checked on (when after.ConcurrencyLimit > 0).
// Other writes are not re-checked, so lowering a limit never cuts a grant
// short. Nor is a move out of ACTIVATION_FAILED (a withdraw or revoke of a
// binding whose removal was never verified): taking access away is never
// refused for want of a slot.
func TakesSlot(before, after *grant.Grant) bool {
	if !after.State.HoldsSlot() {
		return false
	}
	return before == nil || (!before.State.HoldsSlot() && before.State != grant.ActivationFailed)
}

// LimitError is the error of a write refused because other grants of g's
// entitlement hold all the slots g.ConcurrencyLimit allows.
func LimitError(g *grant.Grant) error {
	return fmt.Errorf("%w: other grants hold all %d slots of %s", grant.ErrLimit, g.ConcurrencyLimit, g.Entitlement)
}

// DuplicateRequestError is the error of a Create whose RequestKey is
// recorded already.
func DuplicateRequestError(g *grant.Grant) error {
	return fmt.Errorf("failed to create grant %s: %w: %q", g.ID, grant.ErrDuplicateRequest, g.RequestKey)
}

// Encode is the JSON document of the normalized grant (see Clone).
func Encode(g *grant.Grant) ([]byte, error) {
	c := *g
	c.Privileges = slices.Clone(g.Privileges)
	c.Approvers = slices.Clone(g.Approvers)
	c.Reviewers = slices.Clone(g.Reviewers)
	c.Decisions = slices.Clone(g.Decisions)
	c.Timeline = slices.Clone(g.Timeline)
	c.ApprovalDeadline = utc(c.ApprovalDeadline)
	c.CreateTime = utc(c.CreateTime)
	c.UpdateTime = utc(c.UpdateTime)
	c.StartTime = utc(c.StartTime)
	c.EndTime = utc(c.EndTime)
	for i := range c.Decisions {
		c.Decisions[i].Time = utc(c.Decisions[i].Time)
	}
	for i := range c.Timeline {
		c.Timeline[i].Time = utc(c.Timeline[i].Time)
	}
	data, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("failed to encode grant %s: %w", g.ID, err)
	}
	return data, nil
}

// Decode reverses Encode, turning empty slices and maps into nil.
func Decode(data []byte) (*grant.Grant, error) {
	var g grant.Grant
	if err := json.Unmarshal(data, &g); err != nil {
		return nil, fmt.Errorf("failed to decode grant: %w", err)
	}
	if len(g.Inputs) == 0 {
		g.Inputs = nil
	}
	if len(g.Privileges) == 0 {
		g.Privileges = nil
	}
	if len(g.Approvers) == 0 {
		g.Approvers = nil
	}
	if len(g.Reviewers) == 0 {
		g.Reviewers = nil
	}
	if len(g.Decisions) == 0 {
		g.Decisions = nil
	}
	if len(g.Timeline) == 0 {
		g.Timeline = nil
	}
	return &g, nil
}

// Clone is the normalized deep copy of g: what a ledger returns after
// storing g.
func Clone(g *grant.Grant) (*grant.Grant, error) {
	data, err := Encode(g)
	if err != nil {
		return nil, err
	}
	return Decode(data)
}

// utc drops the location and the monotonic reading; the zero time stays
// the zero time.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// HasUnpublished reports whether g has an event not yet on the topic: the
// indexed flag behind Query.Unpublished.
func HasUnpublished(g *grant.Grant) bool {
	return slices.ContainsFunc(g.Timeline, func(e grant.Entry) bool { return !e.Published })
}

// CheckQuery reports what makes q unusable.
func CheckQuery(q grant.Query) error {
	if q.Limit < 0 {
		return fmt.Errorf("invalid query: negative limit %d", q.Limit)
	}
	return nil
}

// CheckOnce reports what makes Once's arguments unusable.
func CheckOnce(key string, ttl time.Duration) error {
	var errs []error
	if key == "" {
		errs = append(errs, errors.New("empty key"))
	}
	if ttl <= 0 {
		errs = append(errs, fmt.Errorf("ttl %s is not positive", ttl))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("failed to record idempotency key %q: %w", key, err)
	}
	return nil
}

// Match reports whether q selects g (Limit aside).
func Match(q grant.Query, g *grant.Grant) bool {
	switch {
	case q.Requester != "" && g.Requester != q.Requester:
		return false
	case q.Entitlement != "" && g.Entitlement != q.Entitlement:
		return false
	case len(q.States) > 0 && !slices.Contains(q.States, g.State):
		return false
	case len(q.Approvers) > 0 && !slices.ContainsFunc(q.Approvers, func(a string) bool { return slices.Contains(g.Approvers, a) }):
		return false
	case q.Unpublished && !HasUnpublished(g):
		return false
	case !q.EndBefore.IsZero() && (g.EndTime.IsZero() || !g.EndTime.Before(q.EndBefore)):
		return false
	}
	return true
}

// Less orders grants as List returns them: CreateTime descending, then ID
// descending.
func Less(a, b *grant.Grant) bool {
	if !a.CreateTime.Equal(b.CreateTime) {
		return a.CreateTime.After(b.CreateTime)
	}
	return a.ID > b.ID
}

// Dedup returns the distinct values of s in their first order; Firestore
// refuses repeated values in "in" and "array-contains-any".
func Dedup[T comparable](s []T) []T {
	var out []T
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
