package firestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jitpipeline/jit/internal/ledger"
)

// claimDoc is one mail of the notifier's journal (package notify):
// claimed until LeaseUntil, or done for good. Done documents are kept, as
// in the SQLite ledger; a TTL policy on doneAt may drop them once Pub/Sub
// can no longer redeliver their event (31 days).
type claimDoc struct {
	Key        string `firestore:"key"`
	LeaseUntil string `firestore:"leaseUntil,omitempty"`
	Done       bool   `firestore:"done"`
	// DoneAt is only ever written by Done: a TTL policy on it must never
	// see a claim that is still leased.
	DoneAt *time.Time `firestore:"doneAt,omitempty"`
}

// Claim takes key for lease from now on the ledger's clock and reports
// whether it got it: the key was absent (created if absent, atomically),
// or claimed under a lease that has expired and never marked done (taken
// over in a transaction, so of concurrent claims one wins).
func (l *Ledger) Claim(ctx context.Context, key string, lease time.Duration) (bool, error) {
	if err := ledger.CheckClaim(key, lease); err != nil {
		return false, err
	}
	unlock, err := l.locks.lock(ctx, "claim/"+key)
	if err != nil {
		return false, fmt.Errorf("failed to claim %q: %w", key, err)
	}
	defer unlock()
	now := l.clock.Now()
	d := claimDoc{Key: key, LeaseUntil: ledger.FormatTime(now.Add(lease))}
	ref := l.claimRef(key)
	_, err = ref.Create(ctx, d)
	if err == nil {
		return true, nil
	}
	if status.Code(err) != codes.AlreadyExists {
		return false, fmt.Errorf("failed to claim %q: %w", key, err)
	}
	var got, busy bool
	err = l.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		got, busy = false, false
		snap, err := tx.Get(ref)
		if status.Code(err) == codes.NotFound {
			got = true
			return tx.Set(ref, d)
		}
		if err != nil {
			return err
		}
		var cur claimDoc
		if err := snap.DataTo(&cur); err != nil {
			return fmt.Errorf("failed to decode claim document: %w", err)
		}
		if cur.Done {
			return nil
		}
		until, err := ledger.ParseTime(cur.LeaseUntil)
		if err != nil {
			return err
		}
		if now.Before(until) {
			busy = true
			return nil
		}
		got = true
		return tx.Set(ref, d)
	}, firestore.MaxAttempts(maxAttempts))
	if err != nil {
		return false, fmt.Errorf("failed to claim %q: %w", key, err)
	}
	if busy {
		return false, fmt.Errorf("failed to claim %q: %w", key, ledger.ErrClaimBusy)
	}
	return got, nil
}

// Done marks key done for good, claimed or not.
func (l *Ledger) Done(ctx context.Context, key string) error {
	if key == "" {
		return fmt.Errorf("failed to mark a claim done: empty key")
	}
	_, err := l.claimRef(key).Set(ctx, map[string]any{
		"key": key, "done": true, "doneAt": l.clock.Now().UTC(),
	}, firestore.MergeAll)
	if err != nil {
		return fmt.Errorf("failed to mark %q done: %w", key, err)
	}
	return nil
}

// Release deletes key's claim unless it is done.
func (l *Ledger) Release(ctx context.Context, key string) error {
	if key == "" {
		return fmt.Errorf("failed to release a claim: empty key")
	}
	unlock, err := l.locks.lock(ctx, "claim/"+key)
	if err != nil {
		return fmt.Errorf("failed to release %q: %w", key, err)
	}
	defer unlock()
	ref := l.claimRef(key)
	err = l.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(ref)
		if status.Code(err) == codes.NotFound {
			return nil
		}
		if err != nil {
			return err
		}
		var cur claimDoc
		if err := snap.DataTo(&cur); err != nil {
			return fmt.Errorf("failed to decode claim document: %w", err)
		}
		if cur.Done {
			return nil
		}
		return tx.Delete(ref)
	}, firestore.MaxAttempts(maxAttempts))
	if err != nil {
		return fmt.Errorf("failed to release %q: %w", key, err)
	}
	return nil
}

// reservedID matches the document IDs Firestore reserves.
var reservedID = regexp.MustCompile(`^__.*__$`)

// claimRef is the document of a claim: the key path-escaped (no "/"
// left), so an operator reads which grant, event and recipient it is
// about; a key that would not make a valid ID is hashed instead.
func (l *Ledger) claimRef(key string) *firestore.DocumentRef {
	id := url.PathEscape(key)
	if len(id) > 1500 || id == "." || id == ".." || reservedID.MatchString(id) {
		sum := sha256.Sum256([]byte(key))
		id = "sha256-" + hex.EncodeToString(sum[:])
	}
	return l.claims.Doc(id)
}
