// Package firestore is the grant ledger on Google Cloud: one Firestore
// (native mode) document per grant, read-modify-write in Firestore
// transactions, idempotency keys as documents with a TTL field, and the
// notifier's journal (notify.go) as one document per mail.
//
// Times are stored as fixed-width UTC strings (package ledger's
// FormatTime) rather than Firestore timestamps, which keep only
// microseconds: a grant must read back exactly as the SQLite ledger returns
// it. Inputs are stored as a JSON string, because Firestore refuses some
// map keys ("", names of the form __…__) that a policy's inputs may use.
//
// Production needs these composite indexes on the grants collection
// (collection scope; README.md of the parent directory has the same list
// for terraform). Equality filters combine by index merging, so one index
// per filtered field with the shared createTime order suffices:
//
//	requester ASC, createTime DESC
//	entitlement ASC, createTime DESC
//	state ASC, createTime DESC
//	approvers ARRAY_CONTAINS, createTime DESC
//	hasUnpublished ASC, createTime DESC
//	state ASC, endTime ASC
//
// and a TTL policy on the expireAt field of the onceKeys collection.
//
// # Concurrency limits
//
// A query in a transaction does not lock the documents it does not find,
// so counting the grants that hold a slot cannot make a limit atomic: two
// transactions would both count N-1 and both write. Instead each
// entitlement has a document in the slots collection listing the IDs of
// its grants that hold a slot (grant.State.HoldsSlot), read and written in
// the same transaction as every grant write that takes or frees a slot,
// whatever the grant's limit — so the list is complete when a limit is
// introduced later, and that limit counts the grants already active.
// Concurrent writers all read that one document, and Firestore serializes
// them. A write that takes a slot under a limit re-reads, in its
// transaction, as many listed grants as it needs to decide, and drops from
// the list those that no longer hold a slot of the entitlement (a grant
// deleted or changed behind the ledger's back), so a stale entry never
// blocks for good. A list that does not exist yet (the entitlement's
// first slot, or grants written before this ledger kept lists) is seeded
// from a query of the grants holding a slot, in the transaction; deleting
// an entitlement's slots document makes the next write seed it afresh.
package firestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/ledger"
)

// Collection names, after Config.Prefix.
const (
	GrantsCollection = "grants"
	KeysCollection   = "onceKeys"
	// SlotsCollection has a document per entitlement listing its grants
	// that hold a slot (see Concurrency limits).
	SlotsCollection = "slots"
	// ClaimsCollection is the notifier's journal (notify.go).
	ClaimsCollection = "notifyClaims"
	// IAMLeasesCollection (iamqueue.go) is the IAM write queue.
)

const (
	// maxAttempts is per transaction; Firestore aborts a transaction that
	// loses a race and the client retries it with backoff.
	maxAttempts = 20
	// maxDisjunctions is Firestore's limit on the disjunctive normal form
	// of a query: "in" × "array-contains-any" values.
	maxDisjunctions = 30
)

// Config configures Open.
type Config struct {
	// ProjectID is the Google Cloud project of the database.
	ProjectID string
	// DatabaseID is the Firestore database; empty means "(default)".
	DatabaseID string
	// Prefix is prepended to the collection names, so that several
	// pipelines (or test runs) can share one database.
	Prefix string
	// Clock is what Once, Claim and Create (for a RequestKey) read the
	// time from; nil means the system clock.
	Clock clock.Clock
}

// Validate reports every problem of c.
func (c Config) Validate() error {
	var errs []error
	if c.ProjectID == "" {
		errs = append(errs, errors.New("ProjectID is required"))
	}
	if err := ledger.CheckID(c.Prefix + GrantsCollection); err != nil {
		errs = append(errs, fmt.Errorf("Prefix %q does not make a valid collection ID", c.Prefix))
	}
	return errors.Join(errs...)
}

// Ledger is a grant.Ledger in Firestore. It is safe for concurrent use.
type Ledger struct {
	client *firestore.Client
	grants *firestore.CollectionRef
	keys   *firestore.CollectionRef
	slots  *firestore.CollectionRef
	claims *firestore.CollectionRef
	// iamLeases is the IAM write queue (iamqueue.go).
	iamLeases *firestore.CollectionRef
	clock     clock.Clock
	// locks serializes this process's writes per grant, per key and per
	// entitlement's slot list: transactions of one instance then never
	// contend with each other, only with other instances. They are taken
	// in that order; slot locks are only ever waited for while holding no
	// other slot lock, or in name order (slotLocks), so no two writers
	// wait for each other.
	locks *keyedMutex
}

var _ grant.Ledger = (*Ledger)(nil)

// New opens the ledger in the default database of projectID, with the
// default collection names and the system clock.
func New(ctx context.Context, projectID string, opts ...option.ClientOption) (*Ledger, error) {
	return Open(ctx, Config{ProjectID: projectID}, opts...)
}

// Open opens the ledger cfg describes. opts reach the client library (e.g.
// an emulator's endpoint); FIRESTORE_EMULATOR_HOST is honoured too.
func Open(ctx context.Context, cfg Config, opts ...option.ClientOption) (*Ledger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("failed to open Firestore ledger: %w", err)
	}
	db := cfg.DatabaseID
	if db == "" {
		db = firestore.DefaultDatabaseID
	}
	client, err := firestore.NewClientWithDatabase(ctx, cfg.ProjectID, db, opts...)
	if err != nil {
		return nil, fmt.Errorf("failed to open Firestore ledger: %w", err)
	}
	c := cfg.Clock
	if c == nil {
		c = clock.Real()
	}
	return &Ledger{
		client:    client,
		grants:    client.Collection(cfg.Prefix + GrantsCollection),
		keys:      client.Collection(cfg.Prefix + KeysCollection),
		slots:     client.Collection(cfg.Prefix + SlotsCollection),
		claims:    client.Collection(cfg.Prefix + ClaimsCollection),
		iamLeases: client.Collection(cfg.Prefix + IAMLeasesCollection),
		clock:     c,
		locks:     newKeyedMutex(),
	}, nil
}

// Close closes the client.
func (l *Ledger) Close() error {
	if err := l.client.Close(); err != nil {
		return fmt.Errorf("failed to close Firestore ledger: %w", err)
	}
	return nil
}

// Create stores g with Version 1, in a transaction that also records its
// RequestKey and takes its slot: ErrExists if its ID is taken,
// ErrDuplicateRequest if its RequestKey is recorded, ErrLimit if it takes
// a slot its ConcurrencyLimit does not leave (checked in that order). g
// itself is not modified.
func (l *Ledger) Create(ctx context.Context, g *grant.Grant) error {
	if err := ledger.CheckID(g.ID); err != nil {
		return fmt.Errorf("failed to create grant: %w", err)
	}
	c, err := ledger.Clone(g)
	if err != nil {
		return fmt.Errorf("failed to create grant: %w", err)
	}
	c.Version = 1
	d, err := toDoc(c)
	if err != nil {
		return err
	}
	unlock, err := l.locks.lock(ctx, "grant/"+c.ID)
	if err != nil {
		return fmt.Errorf("failed to create grant %s: %w", c.ID, err)
	}
	defer unlock()
	var key *firestore.DocumentRef
	var kd keyDoc
	now := l.clock.Now()
	if c.RequestKey != "" {
		unlockKey, err := l.locks.lock(ctx, "key/"+c.RequestKey)
		if err != nil {
			return fmt.Errorf("failed to create grant %s: %w", c.ID, err)
		}
		defer unlockKey()
		key, kd = l.keyRef(c.RequestKey), newKeyDoc(c.RequestKey, now.Add(ledger.RequestKeyTTL))
	}
	if c.State.HoldsSlot() {
		unlockSlots, err := l.locks.lock(ctx, "slots/"+c.Entitlement)
		if err != nil {
			return fmt.Errorf("failed to create grant %s: %w", c.ID, err)
		}
		defer unlockSlots()
	}
	ref := l.grants.Doc(c.ID)
	err = l.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		_, err := tx.Get(ref)
		switch {
		case err == nil:
			return fmt.Errorf("failed to create grant %s: %w", c.ID, grant.ErrExists)
		case status.Code(err) != codes.NotFound:
			return err // unwrapped: an Aborted read makes the transaction retry
		}
		if key != nil {
			live, err := keyLive(tx, key, now)
			if err != nil {
				return err
			}
			if live {
				return ledger.DuplicateRequestError(c)
			}
		}
		var s *slotList
		if c.State.HoldsSlot() {
			if s, err = l.readSlots(tx, c.Entitlement); err != nil {
				return err
			}
			if c.ConcurrencyLimit > 0 {
				if err := l.checkLimit(tx, s, c); err != nil {
					return fmt.Errorf("failed to create grant %s: %w", c.ID, err)
				}
			}
			s.add(c.ID)
		}
		if err := tx.Create(ref, d); err != nil {
			return err
		}
		if key != nil {
			if err := tx.Set(key, kd); err != nil {
				return err
			}
		}
		if s != nil {
			return s.write(tx)
		}
		return nil
	}, firestore.MaxAttempts(maxAttempts))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, grant.ErrExists), errors.Is(err, grant.ErrDuplicateRequest), errors.Is(err, grant.ErrLimit):
		return err
	case status.Code(err) == codes.AlreadyExists:
		return fmt.Errorf("failed to create grant %s: %w", c.ID, grant.ErrExists)
	}
	return fmt.Errorf("failed to create grant %s: %w", c.ID, err)
}

// Get returns a copy of the grant; ErrNotFound if there is none.
func (l *Ledger) Get(ctx context.Context, id string) (*grant.Grant, error) {
	if ledger.CheckID(id) != nil {
		return nil, fmt.Errorf("failed to get grant %q: %w", id, grant.ErrNotFound)
	}
	snap, err := l.grants.Doc(id).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return nil, fmt.Errorf("failed to get grant %q: %w", id, grant.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to get grant %s: %w", id, err)
	}
	return fromSnapshot(snap)
}

// Update applies fn to a copy of the grant and stores the result with the
// next Version, in a Firestore transaction: fn may run more than once (the
// transaction is retried when another instance wins a race), so it must
// not have effects outside the grant, must be quick, must not call the
// ledger and must not change the ID. An error from fn other than
// ErrNoChange is returned as it is, and nothing is written; so is
// ErrLimit when the result takes a slot its ConcurrencyLimit does not
// leave. A write that takes or frees a slot updates the entitlement's
// slot list in the same transaction.
func (l *Ledger) Update(ctx context.Context, id string, fn func(*grant.Grant) error) (*grant.Grant, error) {
	if ledger.CheckID(id) != nil {
		return nil, fmt.Errorf("failed to update grant %q: %w", id, grant.ErrNotFound)
	}
	unlock, err := l.locks.lock(ctx, "grant/"+id)
	if err != nil {
		return nil, fmt.Errorf("failed to update grant %s: %w", id, err)
	}
	defer unlock()
	slots := &slotLocks{locks: l.locks, held: map[string]func(){}}
	defer slots.unlock()
	for {
		out, err := l.update(ctx, id, fn, slots)
		var need errNeedSlots
		if !errors.As(err, &need) {
			return out, err
		}
		if err := slots.wait(ctx, need.entitlement); err != nil {
			return nil, fmt.Errorf("failed to update grant %s: %w", id, err)
		}
	}
}

// update is one try of Update: errNeedSlots when the write changes the
// slot list of an entitlement whose lock another of this process's
// writers holds (nothing is written; the caller waits for it and tries
// again).
func (l *Ledger) update(ctx context.Context, id string, fn func(*grant.Grant) error, slots *slotLocks) (*grant.Grant, error) {
	ref := l.grants.Doc(id)
	var out *grant.Grant
	err := l.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		out = nil
		snap, err := tx.Get(ref)
		if status.Code(err) == codes.NotFound {
			return fmt.Errorf("failed to update grant %q: %w", id, grant.ErrNotFound)
		}
		if err != nil {
			return err // unwrapped: an Aborted read makes the transaction retry
		}
		read, err := fromSnapshot(snap)
		if err != nil {
			return err
		}
		g, err := fromSnapshot(snap)
		if err != nil {
			return err
		}
		if err := fn(g); err != nil {
			if errors.Is(err, grant.ErrNoChange) {
				out = read
				return nil // commits a transaction without writes
			}
			return fnError{err}
		}
		if g.ID != id {
			return fmt.Errorf("failed to update grant %s: the update changed its ID to %q", id, g.ID)
		}
		g.Version = read.Version + 1
		c, err := ledger.Clone(g)
		if err != nil {
			return err
		}
		d, err := toDoc(c)
		if err != nil {
			return err
		}
		lists, err := l.moveSlot(tx, read, c, slots.try)
		if err != nil {
			return err
		}
		if err := tx.Set(ref, d); err != nil {
			return err
		}
		for _, s := range lists {
			if err := s.write(tx); err != nil {
				return err
			}
		}
		out = c
		return nil
	}, firestore.MaxAttempts(maxAttempts))
	if fe := (fnError{}); errors.As(err, &fe) {
		return nil, fe.err
	}
	if err != nil {
		if errors.Is(err, grant.ErrNotFound) || errors.Is(err, grant.ErrLimit) || errors.As(err, new(errNeedSlots)) {
			return nil, err
		}
		return nil, fmt.Errorf("failed to update grant %s: %w", id, err)
	}
	return out, nil
}

// moveSlot reads, in tx, the slot lists that writing after over before
// changes, and changes them: the grant leaves its old entitlement's list
// when it stops holding a slot of it, and joins the new one's when it
// starts — refused with ErrLimit when that is a move into a slot
// (ledger.TakesSlot) its ConcurrencyLimit does not leave. lock is called
// with each entitlement before its list is read. The caller writes the
// lists it returns.
func (l *Ledger) moveSlot(tx *firestore.Transaction, before, after *grant.Grant, lock func(entitlement string) error) ([]*slotList, error) {
	held, holds := before.State.HoldsSlot(), after.State.HoldsSlot()
	same := before.Entitlement == after.Entitlement
	var lists []*slotList
	if held && (!holds || !same) {
		if err := lock(before.Entitlement); err != nil {
			return nil, err
		}
		s, err := l.readSlots(tx, before.Entitlement)
		if err != nil {
			return nil, err
		}
		s.drop(before.ID)
		lists = append(lists, s)
	}
	if holds && (!held || !same) {
		if err := lock(after.Entitlement); err != nil {
			return nil, err
		}
		s, err := l.readSlots(tx, after.Entitlement)
		if err != nil {
			return nil, err
		}
		if ledger.TakesSlot(before, after) && after.ConcurrencyLimit > 0 {
			if err := l.checkLimit(tx, s, after); err != nil {
				return nil, fmt.Errorf("failed to update grant %s: %w", after.ID, err)
			}
		}
		s.add(after.ID)
		lists = append(lists, s)
	}
	return lists, nil
}

// slotLocks are the slot list locks one Update holds until it returns.
// Inside a transaction it only tries them (try), so that it never waits
// for a lock while holding another; wait takes the ones it needs outside
// the transaction, in name order, after letting go of the rest.
type slotLocks struct {
	locks *keyedMutex
	held  map[string]func() // by entitlement
}

// errNeedSlots says that an Update must wait for the lock of an
// entitlement's slot list.
type errNeedSlots struct{ entitlement string }

func (e errNeedSlots) Error() string { return "the slot list of " + e.entitlement + " is locked" }

func (s *slotLocks) try(entitlement string) error {
	if _, ok := s.held[entitlement]; ok {
		return nil
	}
	unlock, ok := s.locks.tryLock("slots/" + entitlement)
	if !ok {
		return errNeedSlots{entitlement}
	}
	s.held[entitlement] = unlock
	return nil
}

// wait releases the slot locks held and takes them again together with
// entitlement's, in name order.
func (s *slotLocks) wait(ctx context.Context, entitlement string) error {
	names := []string{entitlement}
	for name := range s.held {
		names = append(names, name)
	}
	s.unlock()
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		unlock, err := s.locks.lock(ctx, "slots/"+name)
		if err != nil {
			return err
		}
		s.held[name] = unlock
	}
	return nil
}

func (s *slotLocks) unlock() {
	for name, unlock := range s.held {
		unlock()
		delete(s.held, name)
	}
}

// slotDoc is an entitlement's slot list: the IDs of its grants that hold
// a slot. The entitlement is there for people reading the database; the
// document ID is the hex SHA-256 of it, so any entitlement name fits.
type slotDoc struct {
	Entitlement string   `firestore:"entitlement"`
	Grants      []string `firestore:"grants"`
}

// slotList is a slot list as read in a transaction.
type slotList struct {
	ref *firestore.DocumentRef
	doc slotDoc
}

func (l *Ledger) slotRef(entitlement string) *firestore.DocumentRef {
	sum := sha256.Sum256([]byte(entitlement))
	return l.slots.Doc(hex.EncodeToString(sum[:]))
}

// readSlots reads the slot list of entitlement in tx. A list that does not
// exist is seeded from a query of the grants holding a slot: the query
// cannot lock the grants it does not find, but the read of the absent
// list document does, so two seeders conflict and one retries.
func (l *Ledger) readSlots(tx *firestore.Transaction, entitlement string) (*slotList, error) {
	ref := l.slotRef(entitlement)
	s := &slotList{ref: ref, doc: slotDoc{Entitlement: entitlement}}
	snap, err := tx.Get(ref)
	if err == nil {
		if err := snap.DataTo(&s.doc); err != nil {
			return nil, fmt.Errorf("failed to decode the slots of %s: %w", entitlement, err)
		}
		return s, nil
	}
	if status.Code(err) != codes.NotFound {
		return nil, err
	}
	var states []string
	for _, st := range ledger.SlotStates() {
		states = append(states, string(st))
	}
	q := l.grants.Where("entitlement", "==", entitlement).Where("state", "in", states).
		OrderBy("createTime", firestore.Desc).OrderBy(firestore.DocumentID, firestore.Desc)
	snaps, err := tx.Documents(q).GetAll()
	if err != nil {
		return nil, err
	}
	for _, snap := range snaps {
		s.doc.Grants = append(s.doc.Grants, snap.Ref.ID)
	}
	return s, nil
}

// checkLimit refuses g taking a slot of s when other grants hold all
// g.ConcurrencyLimit of them. The listed grants are re-read in tx (only
// as many as it takes to decide, so at most the limit when the list is
// right); those that no longer hold a slot of the entitlement are dropped
// from the list.
func (l *Ledger) checkLimit(tx *firestore.Transaction, s *slotList, g *grant.Grant) error {
	limit := g.ConcurrencyLimit
	var others []string
	for _, id := range s.doc.Grants {
		if id != g.ID {
			others = append(others, id)
		}
	}
	held := 0
	var stale []string
	for len(others) >= limit-held && held < limit {
		batch := others[:limit-held]
		others = others[limit-held:]
		refs := make([]*firestore.DocumentRef, len(batch))
		for i, id := range batch {
			refs[i] = l.grants.Doc(id)
		}
		snaps, err := tx.GetAll(refs)
		if err != nil {
			return err
		}
		for i, snap := range snaps {
			if holdsSlotOf(snap, s.doc.Entitlement) {
				held++
			} else {
				stale = append(stale, batch[i])
			}
		}
	}
	if held >= limit {
		return ledger.LimitError(g)
	}
	s.drop(stale...)
	return nil
}

// holdsSlotOf reports whether snap is a grant of entitlement in a state
// that holds a slot.
func holdsSlotOf(snap *firestore.DocumentSnapshot, entitlement string) bool {
	if !snap.Exists() {
		return false
	}
	st, errS := snap.DataAt("state")
	ent, errE := snap.DataAt("entitlement")
	s, _ := st.(string)
	return errS == nil && errE == nil && ent == entitlement && grant.State(s).HoldsSlot()
}

func (s *slotList) add(id string) {
	if !slices.Contains(s.doc.Grants, id) {
		s.doc.Grants = append(s.doc.Grants, id)
	}
}

func (s *slotList) drop(ids ...string) {
	s.doc.Grants = slices.DeleteFunc(s.doc.Grants, func(id string) bool { return slices.Contains(ids, id) })
}

func (s *slotList) write(tx *firestore.Transaction) error {
	d := s.doc
	if d.Grants == nil {
		d.Grants = []string{} // an empty list, not null
	}
	return tx.Set(s.ref, d)
}

// fnError carries an Update function's error through RunTransaction
// unchanged. It deliberately has no Unwrap and no GRPCStatus: whatever fn
// returned must not be mistaken for Aborted and retried.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// List returns the grants q selects, newest first. Filters go to Firestore
// where its query limits allow and are otherwise applied here: States when
// States × Approvers exceeds 30 disjunctions, either list when longer than
// 30. With EndBefore the query is ordered by endTime (an inequality field
// must come first in the order) and the result sorted here, so Limit then
// applies after the whole selection is read.
func (l *Ledger) List(ctx context.Context, q grant.Query) ([]*grant.Grant, error) {
	if err := ledger.CheckQuery(q); err != nil {
		return nil, err
	}
	states, approvers := ledger.Dedup(q.States), ledger.Dedup(q.Approvers)
	serverStates := len(states) > 0 && len(states) <= maxDisjunctions
	serverApprovers := len(approvers) > 0 && len(approvers) <= maxDisjunctions
	if serverStates && serverApprovers && len(states)*len(approvers) > maxDisjunctions {
		serverStates = false
	}
	complete := (len(states) == 0 || serverStates) && (len(approvers) == 0 || serverApprovers)

	fq := l.grants.Query
	if q.Requester != "" {
		fq = fq.Where("requester", "==", q.Requester)
	}
	if q.Entitlement != "" {
		fq = fq.Where("entitlement", "==", q.Entitlement)
	}
	if serverStates {
		vals := make([]string, len(states))
		for i, s := range states {
			vals[i] = string(s)
		}
		fq = fq.Where("state", "in", vals)
	}
	if serverApprovers {
		fq = fq.Where("approvers", "array-contains-any", approvers)
	}
	if q.Unpublished {
		fq = fq.Where("hasUnpublished", "==", true)
	}
	if !q.EndBefore.IsZero() {
		fq = fq.Where("endTime", "<", ledger.FormatTime(q.EndBefore)).OrderBy("endTime", firestore.Asc)
		complete = false
	} else {
		fq = fq.OrderBy("createTime", firestore.Desc).OrderBy(firestore.DocumentID, firestore.Desc)
	}
	if complete && q.Limit > 0 {
		fq = fq.Limit(q.Limit)
	}

	it := fq.Documents(ctx)
	defer it.Stop()
	var out []*grant.Grant
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("failed to list grants: %w", err)
		}
		g, err := fromSnapshot(snap)
		if err != nil {
			return nil, err
		}
		if !ledger.Match(q, g) {
			continue
		}
		out = append(out, g)
		if complete && q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	slices.SortStableFunc(out, func(a, b *grant.Grant) int {
		switch {
		case ledger.Less(a, b):
			return -1
		case ledger.Less(b, a):
			return 1
		}
		return 0
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

// keyDoc is an idempotency key. ExpireTime is exact and is what Once
// compares; ExpireAt is the timestamp a TTL policy deletes by, rounded up
// to Firestore's microseconds so that it never deletes a live key.
type keyDoc struct {
	Key        string    `firestore:"key"`
	ExpireTime string    `firestore:"expireTime"`
	ExpireAt   time.Time `firestore:"expireAt"`
}

// Once records key until ttl from now on the ledger's clock and reports
// whether it was absent (or expired). The document ID is the SHA-256 of
// the key, so any key fits; an expired key (the TTL policy deletes lazily,
// typically within a day) is overwritten in a transaction.
func (l *Ledger) Once(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := ledger.CheckOnce(key, ttl); err != nil {
		return false, err
	}
	unlock, err := l.locks.lock(ctx, "key/"+key)
	if err != nil {
		return false, fmt.Errorf("failed to record key %q: %w", key, err)
	}
	defer unlock()
	now := l.clock.Now()
	d := newKeyDoc(key, now.Add(ttl))
	ref := l.keyRef(key)
	_, err = ref.Create(ctx, d)
	if err == nil {
		return true, nil
	}
	if status.Code(err) != codes.AlreadyExists {
		return false, fmt.Errorf("failed to record key %q: %w", key, err)
	}
	var first bool
	err = l.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		live, err := keyLive(tx, ref, now)
		if err != nil {
			return err
		}
		first = !live
		if live {
			return nil
		}
		return tx.Set(ref, d) // absent (the TTL policy deleted it meanwhile) or expired
	}, firestore.MaxAttempts(maxAttempts))
	if err != nil {
		return false, fmt.Errorf("failed to record key %q: %w", key, err)
	}
	return first, nil
}

// keyRef is the document of an idempotency key.
func (l *Ledger) keyRef(key string) *firestore.DocumentRef {
	sum := sha256.Sum256([]byte(key))
	return l.keys.Doc(hex.EncodeToString(sum[:]))
}

func newKeyDoc(key string, expire time.Time) keyDoc {
	return keyDoc{Key: key, ExpireTime: ledger.FormatTime(expire), ExpireAt: ceilMicro(expire)}
}

// keyLive reads the key document in tx and reports whether it is there and
// not expired at now.
func keyLive(tx *firestore.Transaction, ref *firestore.DocumentRef, now time.Time) (bool, error) {
	snap, err := tx.Get(ref)
	if status.Code(err) == codes.NotFound {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var k keyDoc
	if err := snap.DataTo(&k); err != nil {
		return false, fmt.Errorf("failed to decode key document: %w", err)
	}
	expire, err := ledger.ParseTime(k.ExpireTime)
	if err != nil {
		return false, err
	}
	return now.Before(expire), nil
}

// ceilMicro rounds t up to a whole microsecond.
func ceilMicro(t time.Time) time.Time {
	r := t.Truncate(time.Microsecond)
	if r.Before(t) {
		r = r.Add(time.Microsecond)
	}
	return r.UTC()
}

// grantDoc is a grant as a Firestore document. The field names are those
// of the grant's JSON, plus hasUnpublished for Query.Unpublished.
type grantDoc struct {
	ID                string         `firestore:"id"`
	Entitlement       string         `firestore:"entitlement"`
	Requester         string         `firestore:"requester"`
	Justification     string         `firestore:"justification"`
	Inputs            string         `firestore:"inputs"`            // JSON object, "" for none
	RequestedDuration int64          `firestore:"requestedDuration"` // nanoseconds
	Privileges        []privilegeDoc `firestore:"privileges"`

	State             string        `firestore:"state"`
	ApprovalRequired  bool          `firestore:"approvalRequired"`
	RequiredApprovals int64         `firestore:"requiredApprovals"`
	ApprovalDeadline  string        `firestore:"approvalDeadline"`
	Approvers         []string      `firestore:"approvers"`
	Reviewers         []string      `firestore:"reviewers,omitempty"`
	Decisions         []decisionDoc `firestore:"decisions"`

	CreateTime string `firestore:"createTime"`
	UpdateTime string `firestore:"updateTime"`
	StartTime  string `firestore:"startTime"`
	// EndTime is absent while unset, so that the range filter of
	// Query.EndBefore skips the grant.
	EndTime string `firestore:"endTime,omitempty"`

	Execution          string `firestore:"execution"`
	ApprovalCallback   string `firestore:"approvalCallback"`
	EndCallback        string `firestore:"endCallback"`
	RevocationVerified bool   `firestore:"revocationVerified"`

	RequesterHostedDomain string   `firestore:"requesterHostedDomain"`
	RequestKey            string   `firestore:"requestKey"`
	ConcurrencyLimit      int64    `firestore:"concurrencyLimit"`
	Unreachable           []string `firestore:"unreachable,omitempty"`

	Timeline       []entryDoc `firestore:"timeline"`
	Version        int64      `firestore:"version"`
	HasUnpublished bool       `firestore:"hasUnpublished"`
}

type privilegeDoc struct {
	Resource  string `firestore:"resource"`
	Role      string `firestore:"role"`
	Condition string `firestore:"condition"`
}

type decisionDoc struct {
	Approver string `firestore:"approver"`
	Approved bool   `firestore:"approved"`
	Reason   string `firestore:"reason"`
	Time     string `firestore:"time"`
}

type entryDoc struct {
	Time      string `firestore:"time"`
	State     string `firestore:"state"`
	EventType string `firestore:"eventType"`
	EventID   string `firestore:"eventId"`
	Actor     string `firestore:"actor"`
	Message   string `firestore:"message"`
	Published bool   `firestore:"published"`
}

// toDoc converts a normalized grant (ledger.Clone) to its document.
func toDoc(g *grant.Grant) (*grantDoc, error) {
	d := &grantDoc{
		ID: g.ID, Entitlement: g.Entitlement, Requester: g.Requester, Justification: g.Justification,
		RequestedDuration: int64(g.RequestedDuration),
		State:             string(g.State), ApprovalRequired: g.ApprovalRequired, RequiredApprovals: int64(g.RequiredApprovals),
		ApprovalDeadline: ledger.FormatTime(g.ApprovalDeadline), Approvers: g.Approvers, Reviewers: g.Reviewers,
		CreateTime: ledger.FormatTime(g.CreateTime), UpdateTime: ledger.FormatTime(g.UpdateTime),
		StartTime: ledger.FormatTime(g.StartTime), EndTime: ledger.FormatTime(g.EndTime),
		Execution: g.Execution, ApprovalCallback: g.ApprovalCallback, EndCallback: g.EndCallback,
		RevocationVerified: g.RevocationVerified, Version: g.Version, HasUnpublished: ledger.HasUnpublished(g),
		RequesterHostedDomain: g.RequesterHostedDomain, RequestKey: g.RequestKey, ConcurrencyLimit: int64(g.ConcurrencyLimit),
		Unreachable: g.Unreachable,
	}
	if len(g.Inputs) > 0 {
		in, err := json.Marshal(g.Inputs)
		if err != nil {
			return nil, fmt.Errorf("failed to encode inputs of grant %s: %w", g.ID, err)
		}
		d.Inputs = string(in)
	}
	for _, p := range g.Privileges {
		d.Privileges = append(d.Privileges, privilegeDoc(p))
	}
	for _, x := range g.Decisions {
		d.Decisions = append(d.Decisions, decisionDoc{Approver: x.Approver, Approved: x.Approved, Reason: x.Reason, Time: ledger.FormatTime(x.Time)})
	}
	for _, e := range g.Timeline {
		d.Timeline = append(d.Timeline, entryDoc{
			Time: ledger.FormatTime(e.Time), State: string(e.State), EventType: e.EventType, EventID: e.EventID,
			Actor: e.Actor, Message: e.Message, Published: e.Published,
		})
	}
	return d, nil
}

// fromSnapshot decodes a grant document.
func fromSnapshot(snap *firestore.DocumentSnapshot) (*grant.Grant, error) {
	var d grantDoc
	if err := snap.DataTo(&d); err != nil {
		return nil, fmt.Errorf("failed to decode grant document %s: %w", snap.Ref.ID, err)
	}
	g := &grant.Grant{
		ID: d.ID, Entitlement: d.Entitlement, Requester: d.Requester, Justification: d.Justification,
		RequestedDuration: time.Duration(d.RequestedDuration),
		State:             grant.State(d.State), ApprovalRequired: d.ApprovalRequired, RequiredApprovals: int(d.RequiredApprovals),
		Approvers: d.Approvers, Reviewers: d.Reviewers,
		Execution: d.Execution, ApprovalCallback: d.ApprovalCallback, EndCallback: d.EndCallback,
		RevocationVerified: d.RevocationVerified, Version: d.Version,
		RequesterHostedDomain: d.RequesterHostedDomain, RequestKey: d.RequestKey, ConcurrencyLimit: int(d.ConcurrencyLimit),
		Unreachable: d.Unreachable,
	}
	var errs []error
	parse := func(s string) time.Time {
		t, err := ledger.ParseTime(s)
		errs = append(errs, err)
		return t
	}
	g.ApprovalDeadline = parse(d.ApprovalDeadline)
	g.CreateTime = parse(d.CreateTime)
	g.UpdateTime = parse(d.UpdateTime)
	g.StartTime = parse(d.StartTime)
	g.EndTime = parse(d.EndTime)
	if d.Inputs != "" {
		errs = append(errs, json.Unmarshal([]byte(d.Inputs), &g.Inputs))
	}
	for _, p := range d.Privileges {
		g.Privileges = append(g.Privileges, grant.Privilege(p))
	}
	for _, x := range d.Decisions {
		g.Decisions = append(g.Decisions, grant.Decision{Approver: x.Approver, Approved: x.Approved, Reason: x.Reason, Time: parse(x.Time)})
	}
	for _, e := range d.Timeline {
		g.Timeline = append(g.Timeline, grant.Entry{
			Time: parse(e.Time), State: grant.State(e.State), EventType: e.EventType, EventID: e.EventID,
			Actor: e.Actor, Message: e.Message, Published: e.Published,
		})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("failed to decode grant document %s: %w", snap.Ref.ID, err)
	}
	if len(g.Inputs) == 0 {
		g.Inputs = nil
	}
	if len(g.Approvers) == 0 {
		g.Approvers = nil
	}
	if len(g.Reviewers) == 0 {
		g.Reviewers = nil
	}
	return g, nil
}
