package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Group commit. SQLite has one writer, and with synchronous=FULL every
// commit waits for an fsync (about 0.3–1 ms here): one transaction per
// write caps the ledger at a few hundred to a thousand writes a second
// however many requests wait. So concurrent writes of this process are
// combined: whoever takes the writer token runs every write waiting at
// that moment in one transaction, each in its own SAVEPOINT, and commits
// once. A write that fails rolls back to its savepoint and fails alone;
// the others commit together. Each write's durability is unchanged — it
// returns only after the COMMIT that holds it is on disk — and each sees
// the writes before it in the batch, as if they had committed one by one
// in that order.

// op is one write waiting for a batch.
type op struct {
	ctx     context.Context //nolint:containedctx // the caller's, checked before the op runs
	fn      func(*sql.Tx) error
	done    chan error // buffered
	attempt int
}

// maxBatch bounds a batch, so that one transaction does not hold the
// write lock for long while other processes wait.
const maxBatch = 256

// write runs fn in a write transaction, possibly together with other
// writes of this process (see above), and returns once it is committed
// or has failed. fn may run more than once (after SQLITE_BUSY or a lost
// version race with another process), as with inTx.
func (l *Ledger) write(ctx context.Context, fn func(*sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o := &op{ctx: ctx, fn: fn, done: make(chan error, 1)}
	l.pendingMu.Lock()
	l.pending = append(l.pending, o)
	l.pendingMu.Unlock()
	for {
		select {
		case err := <-o.done:
			return err
		case l.writer <- struct{}{}:
			l.combine()
			<-l.writer
		case <-ctx.Done():
			// Leave only while the op waits: once a batch has taken it,
			// it may commit, and the caller must learn how it ended.
			l.pendingMu.Lock()
			i := slices.Index(l.pending, o)
			if i >= 0 {
				l.pending = slices.Delete(l.pending, i, i+1)
			}
			l.pendingMu.Unlock()
			if i >= 0 {
				return ctx.Err()
			}
			return <-o.done
		}
	}
}

// combine runs batches until no write waits. The caller holds the token.
func (l *Ledger) combine() {
	for {
		l.pendingMu.Lock()
		n := min(len(l.pending), maxBatch)
		batch := slices.Clone(l.pending[:n])
		l.pending = slices.Delete(l.pending, 0, n)
		l.pendingMu.Unlock()
		if len(batch) == 0 {
			return
		}
		l.runBatch(batch)
	}
}

// runBatch commits batch in one transaction, retrying it whole on
// SQLITE_BUSY from another process; a write that lost a version race is
// queued again for the next batch, up to maxAttempts.
func (l *Ledger) runBatch(batch []*op) {
	live := batch[:0:0]
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.done <- err
			continue
		}
		live = append(live, o)
	}
	if len(live) == 0 {
		return
	}
	backoff := 5 * time.Millisecond
	for attempt := 1; ; attempt++ {
		results, err := l.tryBatch(live)
		if err == nil {
			var again []*op
			for i, o := range live {
				if (errors.Is(results[i], errVersion) || isBusy(results[i])) && o.attempt+1 < maxAttempts {
					o.attempt++
					again = append(again, o)
					continue
				}
				if errors.Is(results[i], errVersion) {
					results[i] = fmt.Errorf("failed to write: %w after %d attempts", results[i], o.attempt+1)
				}
				o.done <- results[i]
			}
			if len(again) > 0 {
				time.Sleep(backoff) // the other process's write lands first
				l.pendingMu.Lock()
				l.pending = append(again, l.pending...)
				l.pendingMu.Unlock()
			}
			return
		}
		if !isBusy(err) || attempt == maxAttempts {
			for _, o := range live {
				o.done <- err
			}
			return
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// tryBatch runs each op under a savepoint and commits. The error is the
// transaction's (begin or commit); results are each op's own.
func (l *Ledger) tryBatch(ops []*op) ([]error, error) {
	// Not any one caller's context: a caller that leaves must not roll
	// back the others' writes. busy_timeout bounds the waits.
	ctx := context.Background()
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("failed to begin transaction: %w", err)
	}
	results := make([]error, len(ops))
	single := len(ops) == 1
	for i, o := range ops {
		if single {
			results[i] = o.fn(tx)
			continue
		}
		if _, err := tx.ExecContext(ctx, "SAVEPOINT op"); err != nil {
			_ = tx.Rollback()
			return nil, fmt.Errorf("failed to open a savepoint: %w", err)
		}
		if results[i] = o.fn(tx); results[i] != nil {
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO op"); err != nil {
				_ = tx.Rollback()
				return nil, errors.Join(results[i], fmt.Errorf("failed to roll back to the savepoint: %w", err))
			}
		}
		if _, err := tx.ExecContext(ctx, "RELEASE op"); err != nil {
			_ = tx.Rollback()
			return nil, fmt.Errorf("failed to release the savepoint: %w", err)
		}
	}
	if single && results[0] != nil {
		if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
			results[0] = errors.Join(results[0], fmt.Errorf("failed to roll back: %w", err))
		}
		return results, nil
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("failed to commit: %w", err)
	}
	l.commits.Add(1)
	return results, nil
}
