// Package iamqueue is the contract of the durable per-resource write queue
// through which IAM policy writers that share nothing but a ledger combine
// their changes (flat combining, package iambinding). It holds only the
// interface and its argument checks, so that the ledgers (which implement
// it) and iambinding (which uses it) depend on it and not on each other.
//
// A queue keeps, per resource (projects/ID, folders/ID, organizations/ID):
//   - the entries not yet applied, in the order they were put;
//   - the outcome of the entries applied, until their caller reads it or
//     OutcomeTTL has passed;
//   - one writer lease (holder and expiry) and the time of the last policy
//     write recorded under any lease, so that a new holder paces its
//     writes as the last one did.
//
// Times (lease expiry, the last write, outcome expiry) are the
// implementation's clock: on Google Cloud every function instance's
// NTP-synchronised clock, off by milliseconds against leases of seconds.
package iamqueue

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// OutcomeTTL is how long an applied entry's outcome is kept for a caller
// that never reads it (it died, or gave up): far longer than any caller
// waits, short enough that the queue never grows without bound.
const OutcomeTTL = time.Hour

// NeverWritten is Lease.SinceWrite for a resource with no recorded write.
const NeverWritten = time.Duration(math.MaxInt64)

// ErrUnknown is wrapped by Outcome's error for an ID the queue does not
// hold: never put, its outcome already read, or expired.
var ErrUnknown = errors.New("no such queue entry")

// Entry is one caller's changes to one resource, as put.
type Entry struct {
	ID      string
	Changes []byte
}

// Lease is Lease's answer.
type Lease struct {
	// Held reports whether the asking holder holds the lease now.
	Held bool
	// SinceWrite is how long ago, on the queue's clock, the last policy
	// write of the resource was recorded (Done with wrote); NeverWritten
	// if none ever was.
	SinceWrite time.Duration
}

// Outcome is the result of an applied entry.
type Outcome struct {
	// Done reports whether the entry has been applied (or failed for good).
	Done bool
	// Err is "" when the changes were applied, else the failure as the
	// writer recorded it.
	Err string
}

// Queue is the durable write queue. Implementations are safe for
// concurrent use by many processes sharing the store.
type Queue interface {
	// Put appends an entry with the given ID (unique per caller and
	// resource; a valid Firestore document ID: see CheckID) to resource's
	// queue. Putting an ID the queue holds already, pending or done, does
	// nothing: a retried Put is harmless. (A Put racing the Done of its
	// own ID is not: a caller puts each ID once, and again only after an
	// error.)
	Put(ctx context.Context, resource, id string, changes []byte) error
	// Lease gives holder the writer lease of resource for d from now if
	// nobody holds it, its lease has expired, or holder holds it (which
	// renews it); otherwise it leaves it as it is. Of concurrent calls at
	// most one holder gets it. It always reports the time since the last
	// recorded write.
	Lease(ctx context.Context, resource, holder string, d time.Duration) (Lease, error)
	// Pending returns up to limit (> 0) of resource's entries not yet done,
	// oldest first: in the order of their Put on the queue's clock (which,
	// across processes, is each putter's clock; entries put at the same
	// instant come in any order).
	Pending(ctx context.Context, resource string, limit int) ([]Entry, error)
	// Done records the outcome of entries of resource: results maps an ID
	// to "" (applied) or the error text. IDs that are not pending (unknown,
	// or done already: the first outcome stands) are ignored. If wrote, it
	// records now as the time of resource's last policy write. It does not
	// need the lease: an outcome is a fact whoever reports it.
	Done(ctx context.Context, resource string, results map[string]string, wrote bool) error
	// Release ends holder's lease of resource, keeping the last write's
	// time; it does nothing if holder does not hold it.
	Release(ctx context.Context, resource, holder string) error
	// Outcome reports whether entry id of resource is done and with what
	// result. Reporting a done entry deletes it: each outcome is read
	// once. An ID the queue does not hold is an error wrapping ErrUnknown.
	Outcome(ctx context.Context, resource, id string) (Outcome, error)
}

// CheckResource refuses what no IAM resource name can be.
func CheckResource(resource string) error {
	collection, id, ok := strings.Cut(resource, "/")
	switch {
	case !ok || id == "" || strings.Contains(id, "/"):
	case collection == "projects", collection == "folders", collection == "organizations":
		return nil
	}
	return fmt.Errorf("resource %q is not projects/ID, folders/ID or organizations/ID", resource)
}

// CheckID refuses an entry ID or holder that is empty, longer than 200
// bytes, or holds anything but ASCII letters, digits, "-" and "_", so that
// it is a valid Firestore document ID and a safe SQL value as it is.
func CheckID(id string) error {
	if id == "" || len(id) > 200 {
		return fmt.Errorf("ID %q must be 1 to 200 bytes", id)
	}
	for _, r := range id {
		if !idRune(r) {
			return fmt.Errorf("ID %q holds %q; only letters, digits, - and _ are allowed", id, r)
		}
	}
	if strings.HasPrefix(id, "__") {
		return fmt.Errorf("ID %q must not start with __ (reserved by Firestore)", id)
	}
	return nil
}

func idRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		return true
	}
	return false
}

// CheckLease refuses Lease arguments no lease can have.
func CheckLease(resource, holder string, d time.Duration) error {
	var errs []error
	if err := CheckResource(resource); err != nil {
		errs = append(errs, err)
	}
	if err := CheckID(holder); err != nil {
		errs = append(errs, fmt.Errorf("holder: %w", err))
	}
	if d <= 0 {
		errs = append(errs, fmt.Errorf("lease %s is not positive", d))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("failed to lease the write queue of %s: %w", resource, err)
	}
	return nil
}

// CheckPut refuses Put arguments no entry can have.
func CheckPut(resource, id string) error {
	var errs []error
	if err := CheckResource(resource); err != nil {
		errs = append(errs, err)
	}
	if err := CheckID(id); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("failed to queue a change of %s: %w", resource, err)
	}
	return nil
}
