package firestore

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jitpipeline/jit/internal/iamqueue"
	"github.com/jitpipeline/jit/internal/ledger"
)

// The IAM write queue (package iamqueue) is one document per resource in
// IAMLeasesCollection — the lease, and the time of the last policy write
// — with two subcollections: iamPending, the entries not yet applied, and
// iamOutcomes, the results not yet read. Done moves an entry from one to the
// other in a transaction, so an entry is always in exactly one of them.
// Both are read through single-field indexes only (pending by putAt,
// outcomes by doneAt), which Firestore keeps by default: no composite
// index to deploy. A TTL policy on the expireAt field of the iamOutcomes
// collection group (terraform/firestore.tf) is a backstop for resources nobody writes again; Done
// deletes a resource's expired outcomes itself.
//
// Entries are ordered by putAt, the putting instance's clock, then by ID:
// instances' clocks agree within milliseconds, and the order only decides
// which of two changes to one key put within that time is applied last —
// a change states the whole access its key should have, computed from
// the grant ledger, so either is a correct state.
const (
	IAMLeasesCollection = "iamLeases"
	pendingCollection   = "iamPending"
	outcomesCollection  = "iamOutcomes"
)

type leaseDoc struct {
	Resource   string `firestore:"resource"`
	Holder     string `firestore:"holder"`
	LeaseUntil string `firestore:"leaseUntil"`
	LastWrite  string `firestore:"lastWrite"`
}

type pendingDoc struct {
	Changes []byte `firestore:"changes"`
	PutAt   string `firestore:"putAt"`
}

type outcomeDoc struct {
	Result   string    `firestore:"result"`
	DoneAt   string    `firestore:"doneAt"`
	ExpireAt time.Time `firestore:"expireAt"`
}

// IAMQueue is the ledger's IAM write queue (iamqueue.Queue), a view of the
// same database: its methods' names are the journal's too.
type IAMQueue struct{ l *Ledger }

var _ iamqueue.Queue = (*IAMQueue)(nil)

// IAMQueue returns the ledger's IAM write queue.
func (l *Ledger) IAMQueue() *IAMQueue { return &IAMQueue{l: l} }

// leaseRef is resource's document: the name path-escaped, so "/" becomes
// "%2F" and an operator still reads which resource it is.
func (q *IAMQueue) leaseRef(resource string) *firestore.DocumentRef {
	return q.l.iamLeases.Doc(url.PathEscape(resource))
}

func (q *IAMQueue) pendingRef(resource, id string) *firestore.DocumentRef {
	return q.leaseRef(resource).Collection(pendingCollection).Doc(id)
}

func (q *IAMQueue) outcomeRef(resource, id string) *firestore.DocumentRef {
	return q.leaseRef(resource).Collection(outcomesCollection).Doc(id)
}

// Put creates the entry's pending document unless the ID is done (its
// outcome is there) or pending (the create fails), without a
// transaction: concurrent Puts of different IDs never wait for each other.
// The two steps are not atomic with a Done of the same ID between them,
// which needs that ID pending already, put by the same caller, who puts
// once (iambinding's Writer) — a retried Put of a pending ID is refused by
// the create.
func (q *IAMQueue) Put(ctx context.Context, resource, id string, changes []byte) error {
	if err := iamqueue.CheckPut(resource, id); err != nil {
		return err
	}
	_, err := q.outcomeRef(resource, id).Get(ctx)
	if err == nil {
		return nil
	}
	if status.Code(err) != codes.NotFound {
		return fmt.Errorf("failed to queue changes %s of %s: %w", id, resource, err)
	}
	_, err = q.pendingRef(resource, id).Create(ctx, pendingDoc{Changes: changes, PutAt: ledger.FormatTime(q.l.clock.Now())})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("failed to queue changes %s of %s: %w", id, resource, err)
	}
	return nil
}

// Lease takes or renews holder's lease without a transaction: a plain
// read, then a create (no document yet) or an update preconditioned on the
// update time of that read, so of concurrent takers exactly one succeeds
// and the others learn it at once. Transactions would make the waiters'
// attempts queue on the document's lock — with hundreds of instances,
// "too much contention" and retries for minutes — and the polling of a
// lease someone else holds takes no lock at all.
func (q *IAMQueue) Lease(ctx context.Context, resource, holder string, d time.Duration) (iamqueue.Lease, error) {
	if err := iamqueue.CheckLease(resource, holder, d); err != nil {
		return iamqueue.Lease{}, err
	}
	now := q.l.clock.Now()
	until := ledger.FormatTime(now.Add(d))
	ref := q.leaseRef(resource)
	snap, err := ref.Get(ctx)
	if status.Code(err) == codes.NotFound {
		_, err := ref.Create(ctx, leaseDoc{Resource: resource, Holder: holder, LeaseUntil: until})
		switch {
		case err == nil:
			return iamqueue.Lease{Held: true, SinceWrite: iamqueue.NeverWritten}, nil
		case status.Code(err) == codes.AlreadyExists:
			// Another writer created it first: theirs.
			return iamqueue.Lease{SinceWrite: iamqueue.NeverWritten}, nil
		}
		return iamqueue.Lease{}, fmt.Errorf("failed to lease the write queue of %s: %w", resource, err)
	}
	cur, err := readLeaseDoc(snap, err)
	if err != nil {
		return iamqueue.Lease{}, fmt.Errorf("failed to read the write lease of %s: %w", resource, err)
	}
	l := iamqueue.Lease{SinceWrite: sinceWrite(cur, now)}
	if cur.Holder != "" && cur.Holder != holder && !leaseOver(cur, now) {
		return l, nil
	}
	_, err = ref.Update(ctx, []firestore.Update{{Path: "holder", Value: holder}, {Path: "leaseUntil", Value: until}},
		firestore.LastUpdateTime(snap.UpdateTime))
	switch {
	case err == nil:
		l.Held = true
		return l, nil
	case status.Code(err) == codes.FailedPrecondition, status.Code(err) == codes.Aborted:
		// Changed since the read (another writer took it, or the holder
		// recorded a write), or locked by a transaction writing it right
		// now: not ours this time.
		return l, nil
	}
	return iamqueue.Lease{}, fmt.Errorf("failed to lease the write queue of %s: %w", resource, err)
}

// readLeaseDoc decodes a lease document; a missing one is the zero lease.
func readLeaseDoc(snap *firestore.DocumentSnapshot, err error) (leaseDoc, error) {
	if status.Code(err) == codes.NotFound {
		return leaseDoc{}, nil
	}
	if err != nil {
		return leaseDoc{}, err
	}
	var d leaseDoc
	if err := snap.DataTo(&d); err != nil {
		return leaseDoc{}, fmt.Errorf("failed to decode the lease document: %w", err)
	}
	return d, nil
}

func leaseOver(d leaseDoc, now time.Time) bool { return d.LeaseUntil <= ledger.FormatTime(now) }

func sinceWrite(d leaseDoc, now time.Time) time.Duration {
	t, err := ledger.ParseTime(d.LastWrite)
	if err != nil || t.IsZero() {
		return iamqueue.NeverWritten
	}
	return now.Sub(t)
}

// Pending returns up to limit pending entries, oldest first.
func (q *IAMQueue) Pending(ctx context.Context, resource string, limit int) ([]iamqueue.Entry, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("failed to read the write queue of %s: limit %d is not positive", resource, limit)
	}
	snaps, err := q.leaseRef(resource).Collection(pendingCollection).
		OrderBy("putAt", firestore.Asc).OrderBy(firestore.DocumentID, firestore.Asc).
		Limit(limit).Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("failed to read the write queue of %s: %w", resource, err)
	}
	out := make([]iamqueue.Entry, 0, len(snaps))
	for _, s := range snaps {
		var d pendingDoc
		if err := s.DataTo(&d); err != nil {
			return nil, fmt.Errorf("failed to decode queue entry %s of %s: %w", s.Ref.ID, resource, err)
		}
		out = append(out, iamqueue.Entry{ID: s.Ref.ID, Changes: d.Changes})
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// Done moves the pending entries of results to outcomes in one
// transaction, records the last write's time, then deletes the resource's
// outcomes nobody read within OutcomeTTL.
func (q *IAMQueue) Done(ctx context.Context, resource string, results map[string]string, wrote bool) error {
	now := q.l.clock.Now()
	at := ledger.FormatTime(now)
	ids := make([]string, 0, len(results))
	refs := make([]*firestore.DocumentRef, 0, len(results))
	for id := range results {
		if iamqueue.CheckID(id) != nil {
			continue // no such entry can be pending
		}
		ids = append(ids, id)
		refs = append(refs, q.pendingRef(resource, id))
	}
	err := q.l.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snaps, err := tx.GetAll(refs)
		if err != nil {
			return err
		}
		for i, s := range snaps {
			if !s.Exists() {
				continue // done already, or never put: the first outcome stands
			}
			if err := tx.Delete(s.Ref); err != nil {
				return err
			}
			if err := tx.Set(q.outcomeRef(resource, ids[i]), outcomeDoc{
				Result: results[ids[i]], DoneAt: at, ExpireAt: now.Add(iamqueue.OutcomeTTL).UTC(),
			}); err != nil {
				return err
			}
		}
		return nil
	}, firestore.MaxAttempts(maxAttempts))
	if err != nil {
		return fmt.Errorf("failed to record the outcomes of %d queued changes of %s: %w", len(results), resource, err)
	}
	if wrote {
		// Outside the transaction, so that it never holds the lease
		// document's lock while it reads the entries: the waiters' Lease
		// calls would wait for it. A write recorded late only makes the
		// next holder wait a little longer.
		if _, err := q.leaseRef(resource).Set(ctx, map[string]any{"resource": resource, "lastWrite": at}, firestore.MergeAll); err != nil {
			return fmt.Errorf("failed to record the last write of %s: %w", resource, err)
		}
	}
	old, err := q.leaseRef(resource).Collection(outcomesCollection).
		Where("doneAt", "<", ledger.FormatTime(now.Add(-iamqueue.OutcomeTTL))).Limit(100).Documents(ctx).GetAll()
	if err != nil {
		return fmt.Errorf("failed to list the expired outcomes of %s: %w", resource, err)
	}
	for _, s := range old {
		if _, err := s.Ref.Delete(ctx); err != nil && status.Code(err) != codes.NotFound {
			return fmt.Errorf("failed to delete expired outcome %s of %s: %w", s.Ref.ID, resource, err)
		}
	}
	return nil
}

// Release ends holder's lease, keeping the last write's time, with an
// update preconditioned on the read that shows holder holding it.
func (q *IAMQueue) Release(ctx context.Context, resource, holder string) error {
	ref := q.leaseRef(resource)
	for attempt := 1; ; attempt++ {
		snap, err := ref.Get(ctx)
		if status.Code(err) == codes.NotFound {
			return nil
		}
		cur, err := readLeaseDoc(snap, err)
		if err != nil {
			return fmt.Errorf("failed to release the write lease of %s: %w", resource, err)
		}
		if cur.Holder != holder {
			return nil
		}
		_, err = ref.Update(ctx, []firestore.Update{{Path: "holder", Value: ""}, {Path: "leaseUntil", Value: ""}},
			firestore.LastUpdateTime(snap.UpdateTime))
		if err == nil || (status.Code(err) == codes.FailedPrecondition && attempt < maxAttempts) {
			if err == nil {
				return nil
			}
			continue // changed since the read: look again
		}
		return fmt.Errorf("failed to release the write lease of %s: %w", resource, err)
	}
}

// Outcome looks at the pending document first: Done deletes it in the
// transaction that creates the outcome, so a missing pending document
// means the outcome is there, or was read, or never was.
func (q *IAMQueue) Outcome(ctx context.Context, resource, id string) (iamqueue.Outcome, error) {
	if err := iamqueue.CheckID(id); err != nil {
		return iamqueue.Outcome{}, fmt.Errorf("failed to read the outcome of %s on %s: %w: %w", id, resource, iamqueue.ErrUnknown, err)
	}
	_, err := q.pendingRef(resource, id).Get(ctx)
	if err == nil {
		return iamqueue.Outcome{}, nil
	}
	if status.Code(err) != codes.NotFound {
		return iamqueue.Outcome{}, fmt.Errorf("failed to read queue entry %s of %s: %w", id, resource, err)
	}
	ref := q.outcomeRef(resource, id)
	snap, err := ref.Get(ctx)
	if status.Code(err) == codes.NotFound {
		return iamqueue.Outcome{}, fmt.Errorf("failed to read the outcome of %s on %s: %w", id, resource, iamqueue.ErrUnknown)
	}
	if err != nil {
		return iamqueue.Outcome{}, fmt.Errorf("failed to read the outcome of %s on %s: %w", id, resource, err)
	}
	var d outcomeDoc
	if err := snap.DataTo(&d); err != nil {
		return iamqueue.Outcome{}, fmt.Errorf("failed to decode the outcome of %s on %s: %w", id, resource, err)
	}
	if _, err := ref.Delete(ctx); err != nil {
		return iamqueue.Outcome{}, fmt.Errorf("failed to delete the outcome of %s on %s: %w", id, resource, err)
	}
	return iamqueue.Outcome{Done: true, Err: d.Result}, nil
}
