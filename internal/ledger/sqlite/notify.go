package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jitpipeline/jit/internal/ledger"
)

// notifySchema is the notifier's journal (package notify): one row per
// mail, claimed until lease_until, then done for good. Done rows are kept:
// an event can be redelivered for as long as Pub/Sub retains it, and a
// row is a few dozen bytes per mail.
const notifySchema = `
CREATE TABLE notify_claims (
	key         TEXT PRIMARY KEY,
	lease_until TEXT NOT NULL,
	done        INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
`

// Claim takes key for lease from now on the ledger's clock and reports
// whether it got it: the key was absent, or claimed under a lease that has
// expired and never marked done. One statement decides, in a write
// transaction, so of concurrent claims exactly one gets the key.
func (l *Ledger) Claim(ctx context.Context, key string, lease time.Duration) (bool, error) {
	if err := ledger.CheckClaim(key, lease); err != nil {
		return false, err
	}
	now := l.clock.Now()
	var got, busy bool
	err := l.write(ctx, func(tx *sql.Tx) error {
		got, busy = false, false
		res, err := tx.ExecContext(ctx, `INSERT INTO notify_claims (key, lease_until, done) VALUES (?, ?, 0)
			ON CONFLICT (key) DO UPDATE SET lease_until = excluded.lease_until
			WHERE notify_claims.done = 0 AND notify_claims.lease_until <= ?`,
			key, ledger.FormatTime(now.Add(lease)), ledger.FormatTime(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n > 0 {
			got = n > 0
			return err
		}
		var done int
		if err := tx.QueryRowContext(ctx, `SELECT done FROM notify_claims WHERE key = ?`, key).Scan(&done); err != nil {
			return err
		}
		busy = done == 0
		return nil
	})
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
		return errors.New("failed to mark a claim done: empty key")
	}
	now := ledger.FormatTime(l.clock.Now())
	err := l.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO notify_claims (key, lease_until, done) VALUES (?, ?, 1)
			ON CONFLICT (key) DO UPDATE SET done = 1`, key, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to mark %q done: %w", key, err)
	}
	return nil
}

// Release drops key's claim unless it is done.
func (l *Ledger) Release(ctx context.Context, key string) error {
	if key == "" {
		return errors.New("failed to release a claim: empty key")
	}
	err := l.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM notify_claims WHERE key = ? AND done = 0`, key)
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to release %q: %w", key, err)
	}
	return nil
}
