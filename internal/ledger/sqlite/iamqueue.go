package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/iamqueue"
	"github.com/jitpipeline/jit/internal/ledger"
)

// iamQueueSchema is the IAM write queue (package iamqueue): entries in
// insertion order (seq), done in place with their result until read or
// expired, and one lease row per resource that also keeps the time of its
// last policy write ("" for never; holder "" when released).
const iamQueueSchema = `
CREATE TABLE iam_queue (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	resource  TEXT NOT NULL,
	id        TEXT NOT NULL,
	changes   TEXT NOT NULL,
	done      INTEGER NOT NULL DEFAULT 0,
	result    TEXT NOT NULL DEFAULT '',
	done_time TEXT NOT NULL DEFAULT '',
	UNIQUE (resource, id)
) STRICT;
CREATE INDEX iam_queue_pending ON iam_queue (resource, done, seq);
CREATE INDEX iam_queue_by_done_time ON iam_queue (done_time) WHERE done = 1;
CREATE TABLE iam_leases (
	resource    TEXT PRIMARY KEY,
	holder      TEXT NOT NULL,
	lease_until TEXT NOT NULL,
	last_write  TEXT NOT NULL
) STRICT, WITHOUT ROWID;
`

// IAMQueue is the ledger's IAM write queue (iamqueue.Queue), a view of
// the same file: its methods' names are the journal's too.
type IAMQueue struct {
	l     *Ledger
	clock clock.Clock
}

var _ iamqueue.Queue = (*IAMQueue)(nil)

// IAMQueue returns the ledger's IAM write queue, on the ledger's clock.
func (l *Ledger) IAMQueue() *IAMQueue { return &IAMQueue{l: l, clock: l.clock} }

// WithClock returns the queue with its leases, write times and outcome
// expiry on c: the embedded pipeline runs its grants on a simulated clock,
// but leases and the pacing of writes are about real processes and the
// real IAM API's quota.
func (q *IAMQueue) WithClock(c clock.Clock) *IAMQueue { return &IAMQueue{l: q.l, clock: c} }

// Put appends an entry to resource's queue, unless the ID is there.
func (q *IAMQueue) Put(ctx context.Context, resource, id string, changes []byte) error {
	if err := iamqueue.CheckPut(resource, id); err != nil {
		return err
	}
	err := q.l.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO iam_queue (resource, id, changes) VALUES (?, ?, ?)
			ON CONFLICT (resource, id) DO NOTHING`, resource, id, string(changes))
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to queue changes %s of %s: %w", id, resource, err)
	}
	return nil
}

// Lease takes or renews holder's lease of resource. A lease held by
// someone else is seen by a read, without the write lock, so the waiters'
// polling never queues behind the holder's writes.
func (q *IAMQueue) Lease(ctx context.Context, resource, holder string, d time.Duration) (iamqueue.Lease, error) {
	if err := iamqueue.CheckLease(resource, holder, d); err != nil {
		return iamqueue.Lease{}, err
	}
	now := q.clock.Now()
	cur, held, lastWrite, err := readLease(ctx, q.l.db, resource)
	if err != nil {
		return iamqueue.Lease{}, err
	}
	if held != "" && held != holder && !expired(cur, now) {
		return iamqueue.Lease{SinceWrite: since(lastWrite, now)}, nil
	}
	var got bool
	err = q.l.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO iam_leases (resource, holder, lease_until, last_write) VALUES (?, ?, ?, '')
			ON CONFLICT (resource) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until
			WHERE iam_leases.holder = '' OR iam_leases.holder = ? OR iam_leases.lease_until <= ?`,
			resource, holder, ledger.FormatTime(now.Add(d)), holder, ledger.FormatTime(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		got = n > 0
		_, _, lastWrite, err = readLease(ctx, tx, resource)
		return err
	})
	if err != nil {
		return iamqueue.Lease{}, fmt.Errorf("failed to lease the write queue of %s: %w", resource, err)
	}
	return iamqueue.Lease{Held: got, SinceWrite: since(lastWrite, now)}, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// readLease returns resource's lease row; all "" if there is none.
func readLease(ctx context.Context, q querier, resource string) (until, holder string, lastWrite time.Time, err error) {
	var lw string
	err = q.QueryRowContext(ctx, `SELECT lease_until, holder, last_write FROM iam_leases WHERE resource = ?`, resource).Scan(&until, &holder, &lw)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", time.Time{}, nil
	}
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("failed to read the write lease of %s: %w", resource, err)
	}
	if lastWrite, err = ledger.ParseTime(lw); err != nil {
		return "", "", time.Time{}, err
	}
	return until, holder, lastWrite, nil
}

// expired reports whether a lease_until value is past at now.
func expired(until string, now time.Time) bool { return until <= ledger.FormatTime(now) }

// since is now - t, or NeverWritten for the zero time.
func since(t, now time.Time) time.Duration {
	if t.IsZero() {
		return iamqueue.NeverWritten
	}
	return now.Sub(t)
}

// Pending returns up to limit of resource's entries not yet done, in
// insertion order.
func (q *IAMQueue) Pending(ctx context.Context, resource string, limit int) ([]iamqueue.Entry, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("failed to read the write queue of %s: limit %d is not positive", resource, limit)
	}
	rows, err := q.l.db.QueryContext(ctx, `SELECT id, changes FROM iam_queue WHERE resource = ? AND done = 0 ORDER BY seq LIMIT ?`, resource, limit)
	if err != nil {
		return nil, fmt.Errorf("failed to read the write queue of %s: %w", resource, err)
	}
	defer rows.Close()
	var out []iamqueue.Entry
	for rows.Next() {
		var e iamqueue.Entry
		var changes string
		if err := rows.Scan(&e.ID, &changes); err != nil {
			return nil, fmt.Errorf("failed to read the write queue of %s: %w", resource, err)
		}
		e.Changes = []byte(changes)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("failed to read the write queue of %s: %w", resource, err)
	}
	return out, nil
}

// Done records outcomes of pending entries, and the write's time if
// wrote; it also deletes outcomes nobody read within OutcomeTTL.
func (q *IAMQueue) Done(ctx context.Context, resource string, results map[string]string, wrote bool) error {
	now := q.clock.Now()
	at := ledger.FormatTime(now)
	err := q.l.write(ctx, func(tx *sql.Tx) error {
		for id, result := range results {
			if _, err := tx.ExecContext(ctx, `UPDATE iam_queue SET done = 1, result = ?, done_time = ?
				WHERE resource = ? AND id = ? AND done = 0`, result, at, resource, id); err != nil {
				return err
			}
		}
		if wrote {
			if _, err := tx.ExecContext(ctx, `INSERT INTO iam_leases (resource, holder, lease_until, last_write) VALUES (?, '', '', ?)
				ON CONFLICT (resource) DO UPDATE SET last_write = excluded.last_write`, resource, at); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM iam_queue WHERE done = 1 AND done_time < ?`,
			ledger.FormatTime(now.Add(-iamqueue.OutcomeTTL)))
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to record the outcomes of %d queued changes of %s: %w", len(results), resource, err)
	}
	return nil
}

// Release ends holder's lease of resource.
func (q *IAMQueue) Release(ctx context.Context, resource, holder string) error {
	err := q.l.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE iam_leases SET holder = '', lease_until = '' WHERE resource = ? AND holder = ?`, resource, holder)
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to release the write lease of %s: %w", resource, err)
	}
	return nil
}

// Outcome reports entry id's outcome, deleting it once done. The common
// answer, not done yet, is a read without the write lock.
func (q *IAMQueue) Outcome(ctx context.Context, resource, id string) (iamqueue.Outcome, error) {
	var o iamqueue.Outcome
	err := q.l.db.QueryRowContext(ctx, `SELECT done, result FROM iam_queue WHERE resource = ? AND id = ?`, resource, id).Scan(&o.Done, &o.Err)
	if errors.Is(err, sql.ErrNoRows) {
		return iamqueue.Outcome{}, fmt.Errorf("failed to read the outcome of %s on %s: %w", id, resource, iamqueue.ErrUnknown)
	}
	if err != nil {
		return iamqueue.Outcome{}, fmt.Errorf("failed to read the outcome of %s on %s: %w", id, resource, err)
	}
	if !o.Done {
		return o, nil
	}
	err = q.l.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM iam_queue WHERE resource = ? AND id = ? AND done = 1`, resource, id)
		return err
	})
	if err != nil {
		return iamqueue.Outcome{}, fmt.Errorf("failed to delete the outcome of %s on %s: %w", id, resource, err)
	}
	return o, nil
}
