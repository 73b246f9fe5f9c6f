// Package sqlite is the grant ledger of the embedded pipeline: one SQLite
// file (pure Go, modernc.org/sqlite) in WAL mode, so a kill -9 at any moment
// loses no committed write and leaves no torn state.
//
// Each grant is one row: the JSON document of the grant (package ledger's
// Encode) plus the columns the queries filter and sort on; approvers are a
// join table. Writes are serialized inside the process by a lock, so the
// pipeline's many concurrent goroutines queue in Go instead of spinning in
// SQLite's busy handler; across processes BEGIN IMMEDIATE and a busy
// timeout serialize them, and Update's version check plus a retry on
// SQLITE_BUSY covers what slips through.
//
// Because every write transaction holds SQLite's write lock from its
// BEGIN, a check made inside it is still true at its COMMIT, across
// processes too: a concurrency limit is checked by counting the
// entitlement's grants that hold a slot, and a RequestKey by looking it
// up in once_keys, in the transaction that writes the grant.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/ledger"
)

const (
	// schemaVersion is kept in PRAGMA user_version; migrate brings older
	// files up to it and refuses newer ones.
	schemaVersion = 4
	// busyTimeout is how long SQLite waits for another process's lock.
	busyTimeout = 10 * time.Second
	// maxOpenConns bounds the pool: reads run concurrently in WAL mode,
	// writes take the mutex and one connection.
	maxOpenConns = 4
	// maxAttempts bounds Update's and Create's retries on SQLITE_BUSY and
	// lost version races (other processes only).
	maxAttempts = 20
	// purgeEvery is how often Once deletes expired keys.
	purgeEvery = time.Hour
)

// Ledger is a grant.Ledger in one SQLite file. It is safe for concurrent
// use.
type Ledger struct {
	db    *sql.DB
	clock clock.Clock

	// writer holds a token while one of this process's write
	// transactions runs: a mutex whose waiters honour their context.
	writer chan struct{}
	// pending are the writes waiting for the next group commit (group.go).
	pendingMu sync.Mutex
	pending   []*op
	// commits counts the transactions group commit made, for its tests.
	commits atomic.Int64
	// lastPurge is when Once last deleted expired keys (guarded by writer).
	lastPurge time.Time
}

var _ grant.Ledger = (*Ledger)(nil)

// Option configures Open.
type Option func(*Ledger)

// WithClock makes Once and Create (for a RequestKey) read the time from c
// (default: the system clock), so idempotency keys expire on the
// pipeline's clock.
func WithClock(c clock.Clock) Option {
	return func(l *Ledger) { l.clock = c }
}

// Open opens (creating if needed) the ledger file at path and brings its
// schema up to date.
func Open(path string, opts ...Option) (*Ledger, error) {
	if path == "" {
		return nil, errors.New("failed to open ledger: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("failed to create directory for %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("failed to open ledger %s: %w", path, err)
	}
	db.SetMaxOpenConns(maxOpenConns)
	db.SetMaxIdleConns(maxOpenConns)
	l := &Ledger{db: db, clock: clock.Real(), writer: make(chan struct{}, 1)}
	for _, opt := range opts {
		opt(l)
	}
	if err := l.migrate(context.Background()); err != nil {
		db.Close()
		return nil, fmt.Errorf("failed to open ledger %s: %w", path, err)
	}
	return l, nil
}

// dsn sets every connection up the same way: WAL (readers never block the
// writer and a crash loses nothing committed), synchronous=FULL (a commit
// is on disk before it returns, so even power loss keeps it), foreign keys
// for the approvers table, and BEGIN IMMEDIATE so a transaction that will
// write takes the write lock first instead of failing to upgrade later.
func dsn(path string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// migrations[v] brings a file from schema version v-1 to v.
var migrations = [schemaVersion + 1]string{
	1: schema,
	// The concurrency limit counts an entitlement's grants in the slot
	// states.
	2: `CREATE INDEX grants_by_entitlement_state ON grants (entitlement, state);`,
	// The notifier's journal (notify.go).
	3: notifySchema,
	// The IAM write queue (iamqueue.go).
	4: iamQueueSchema,
}

// schema is version 1. Times are ledger.FormatTime strings, which sort as
// the times do; end_time is NULL while the grant has no end.
const schema = `
CREATE TABLE grants (
	id              TEXT PRIMARY KEY,
	version         INTEGER NOT NULL,
	requester       TEXT NOT NULL,
	entitlement     TEXT NOT NULL,
	state           TEXT NOT NULL,
	create_time     TEXT NOT NULL,
	end_time        TEXT,
	has_unpublished INTEGER NOT NULL,
	doc             TEXT NOT NULL
) STRICT;
CREATE INDEX grants_by_create_time ON grants (create_time DESC, id DESC);
CREATE INDEX grants_by_requester ON grants (requester, create_time DESC, id DESC);
CREATE INDEX grants_by_entitlement ON grants (entitlement, create_time DESC, id DESC);
CREATE INDEX grants_by_state ON grants (state, create_time DESC, id DESC);
CREATE INDEX grants_unpublished ON grants (create_time DESC, id DESC) WHERE has_unpublished = 1;
CREATE INDEX grants_by_end_time ON grants (end_time) WHERE end_time IS NOT NULL;
CREATE TABLE grant_approvers (
	approver TEXT NOT NULL,
	grant_id TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
	PRIMARY KEY (approver, grant_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX grant_approvers_by_grant ON grant_approvers (grant_id);
CREATE TABLE once_keys (
	key         TEXT PRIMARY KEY,
	expire_time TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX once_keys_by_expire_time ON once_keys (expire_time);
`

// migrate creates the schema in a new file, brings an older file up to
// date, and refuses a file written by a newer version of this package.
func (l *Ledger) migrate(ctx context.Context) error {
	if err := l.lockWriter(ctx); err != nil {
		return err
	}
	defer l.unlockWriter()
	return l.inTx(ctx, func(tx *sql.Tx) error {
		var v int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
			return fmt.Errorf("failed to read schema version: %w", err)
		}
		switch {
		case v == schemaVersion:
			return nil
		case v > schemaVersion:
			return fmt.Errorf("schema version %d is newer than this program's %d", v, schemaVersion)
		}
		for next := v + 1; next <= schemaVersion; next++ {
			if _, err := tx.ExecContext(ctx, migrations[next]); err != nil {
				return fmt.Errorf("failed to migrate the schema to version %d: %w", next, err)
			}
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
			return fmt.Errorf("failed to set schema version: %w", err)
		}
		return nil
	})
}

// Close closes the database.
func (l *Ledger) Close() error {
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("failed to close ledger: %w", err)
	}
	return nil
}

// Create stores g with Version 1; ErrExists if its ID is taken,
// ErrDuplicateRequest if its RequestKey is recorded, ErrLimit if it takes
// a slot its ConcurrencyLimit does not leave (checked in that order, in
// the transaction that writes). g itself is not modified.
func (l *Ledger) Create(ctx context.Context, g *grant.Grant) error {
	if err := ledger.CheckID(g.ID); err != nil {
		return fmt.Errorf("failed to create grant: %w", err)
	}
	c, err := ledger.Clone(g)
	if err != nil {
		return fmt.Errorf("failed to create grant: %w", err)
	}
	c.Version = 1
	now := l.clock.Now()
	err = l.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM grants WHERE id = ?", c.ID).Scan(&n); err != nil {
			return fmt.Errorf("failed to look for grant %s: %w", c.ID, err)
		}
		if n > 0 {
			return fmt.Errorf("failed to create grant %s: %w", c.ID, grant.ErrExists)
		}
		if c.RequestKey != "" {
			first, err := recordKey(ctx, tx, c.RequestKey, now, ledger.RequestKeyTTL)
			if err != nil {
				return err
			}
			if !first {
				return ledger.DuplicateRequestError(c)
			}
		}
		if err := checkLimit(ctx, tx, nil, c); err != nil {
			return fmt.Errorf("failed to create grant %s: %w", c.ID, err)
		}
		return insert(ctx, tx, c)
	})
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("failed to create grant %s: %w", c.ID, err)
	}
	return err
}

// checkLimit refuses the write of g over before (nil for a Create) if it
// takes a slot that g's ConcurrencyLimit does not leave: as many other
// grants of the entitlement hold one. The caller's transaction holds the
// write lock, so the count stays true until it commits.
func checkLimit(ctx context.Context, tx *sql.Tx, before, g *grant.Grant) error {
	if g.ConcurrencyLimit <= 0 || !ledger.TakesSlot(before, g) {
		return nil
	}
	states := ledger.SlotStates()
	args := []any{g.Entitlement, g.ID}
	for _, s := range states {
		args = append(args, string(s))
	}
	var held int
	err := tx.QueryRowContext(ctx, "SELECT count(*) FROM grants WHERE entitlement = ? AND id != ? AND state IN ("+placeholders(len(states))+")", args...).Scan(&held)
	if err != nil {
		return fmt.Errorf("failed to count the grants holding a slot of %s: %w", g.Entitlement, err)
	}
	if held >= g.ConcurrencyLimit {
		return ledger.LimitError(g)
	}
	return nil
}

// Get returns a copy of the grant; ErrNotFound if there is none.
func (l *Ledger) Get(ctx context.Context, id string) (*grant.Grant, error) {
	var doc string
	err := l.db.QueryRowContext(ctx, "SELECT doc FROM grants WHERE id = ?", id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("failed to get grant %q: %w", id, grant.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to get grant %s: %w", id, err)
	}
	return ledger.Decode([]byte(doc))
}

// Update applies fn to a copy of the grant and stores the result with the
// next Version, in one transaction. fn runs while this process's writes
// wait, so it must be quick and must not call the ledger; like the
// Firestore ledger's, it may run more than once (after a lost race with
// another process) and must not change the ID. An error from fn other than
// ErrNoChange is returned as it is, and nothing is written; so is
// ErrLimit when the result takes a slot its ConcurrencyLimit does not
// leave.
func (l *Ledger) Update(ctx context.Context, id string, fn func(*grant.Grant) error) (*grant.Grant, error) {
	var out *grant.Grant
	err := l.write(ctx, func(tx *sql.Tx) error {
		var doc string
		var version int64
		err := tx.QueryRowContext(ctx, "SELECT doc, version FROM grants WHERE id = ?", id).Scan(&doc, &version)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("failed to update grant %q: %w", id, grant.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("failed to read grant %s: %w", id, err)
		}
		read, err := ledger.Decode([]byte(doc))
		if err != nil {
			return err
		}
		read.Version = version
		g, err := ledger.Decode([]byte(doc))
		if err != nil {
			return err
		}
		g.Version = version
		if err := fn(g); err != nil {
			if errors.Is(err, grant.ErrNoChange) {
				out = read
				return nil
			}
			return fnError{err}
		}
		if g.ID != id {
			return fmt.Errorf("failed to update grant %s: the update changed its ID to %q", id, g.ID)
		}
		g.Version = version + 1
		c, err := ledger.Clone(g)
		if err != nil {
			return err
		}
		if err := checkLimit(ctx, tx, read, c); err != nil {
			return fmt.Errorf("failed to update grant %s: %w", id, err)
		}
		if err := update(ctx, tx, c, version); err != nil {
			return err
		}
		out = c
		return nil
	})
	if fe := (fnError{}); errors.As(err, &fe) {
		return nil, fe.err
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// fnError carries an Update function's error through the transaction
// unchanged. It deliberately has no Unwrap: whatever fn returned must not
// be mistaken for SQLITE_BUSY and retried.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// errVersion is a lost race with another process: the transaction is
// retried.
var errVersion = errors.New("grant changed concurrently")

// insert writes a new row for g.
func insert(ctx context.Context, tx *sql.Tx, g *grant.Grant) error {
	doc, err := ledger.Encode(g)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO grants
		(id, version, requester, entitlement, state, create_time, end_time, has_unpublished, doc)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		g.ID, g.Version, g.Requester, g.Entitlement, string(g.State),
		ledger.FormatTime(g.CreateTime), endTime(g), ledger.HasUnpublished(g), string(doc))
	if err != nil {
		return fmt.Errorf("failed to insert grant %s: %w", g.ID, err)
	}
	return insertApprovers(ctx, tx, g)
}

// update replaces the row of g if it still has version prev.
func update(ctx context.Context, tx *sql.Tx, g *grant.Grant, prev int64) error {
	doc, err := ledger.Encode(g)
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `UPDATE grants SET
		version = ?, requester = ?, entitlement = ?, state = ?, create_time = ?, end_time = ?,
		has_unpublished = ?, doc = ?
		WHERE id = ? AND version = ?`,
		g.Version, g.Requester, g.Entitlement, string(g.State), ledger.FormatTime(g.CreateTime),
		endTime(g), ledger.HasUnpublished(g), string(doc), g.ID, prev)
	if err != nil {
		return fmt.Errorf("failed to update grant %s: %w", g.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("failed to update grant %s: %w", g.ID, err)
	}
	if n == 0 {
		return errVersion
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM grant_approvers WHERE grant_id = ?", g.ID); err != nil {
		return fmt.Errorf("failed to update approvers of grant %s: %w", g.ID, err)
	}
	return insertApprovers(ctx, tx, g)
}

func insertApprovers(ctx context.Context, tx *sql.Tx, g *grant.Grant) error {
	for _, a := range g.Approvers {
		if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO grant_approvers (approver, grant_id) VALUES (?, ?)", a, g.ID); err != nil {
			return fmt.Errorf("failed to store approver of grant %s: %w", g.ID, err)
		}
	}
	return nil
}

// endTime is the end_time column: NULL while the grant has no end.
func endTime(g *grant.Grant) any {
	if g.EndTime.IsZero() {
		return nil
	}
	return ledger.FormatTime(g.EndTime)
}

// List returns the grants q selects, newest first.
func (l *Ledger) List(ctx context.Context, q grant.Query) ([]*grant.Grant, error) {
	if err := ledger.CheckQuery(q); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	if q.Requester != "" {
		where = append(where, "requester = ?")
		args = append(args, q.Requester)
	}
	if q.Entitlement != "" {
		where = append(where, "entitlement = ?")
		args = append(args, q.Entitlement)
	}
	if states := ledger.Dedup(q.States); len(states) > 0 {
		where = append(where, "state IN ("+placeholders(len(states))+")")
		for _, s := range states {
			args = append(args, string(s))
		}
	}
	if approvers := ledger.Dedup(q.Approvers); len(approvers) > 0 {
		where = append(where, "id IN (SELECT grant_id FROM grant_approvers WHERE approver IN ("+placeholders(len(approvers))+"))")
		for _, a := range approvers {
			args = append(args, a)
		}
	}
	if q.Unpublished {
		where = append(where, "has_unpublished = 1")
	}
	if !q.EndBefore.IsZero() {
		where = append(where, "end_time IS NOT NULL AND end_time < ?")
		args = append(args, ledger.FormatTime(q.EndBefore))
	}
	stmt := "SELECT doc, version FROM grants"
	if len(where) > 0 {
		stmt += " WHERE " + strings.Join(where, " AND ") //nolint:gosec // G202: where holds only constant SQL; every value is a ? in args
	}
	stmt += " ORDER BY create_time DESC, id DESC"
	if q.Limit > 0 {
		stmt += " LIMIT ?"
		args = append(args, q.Limit)
	}
	rows, err := l.db.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("failed to list grants: %w", err)
	}
	defer rows.Close()
	var out []*grant.Grant
	for rows.Next() {
		var doc string
		var version int64
		if err := rows.Scan(&doc, &version); err != nil {
			return nil, fmt.Errorf("failed to list grants: %w", err)
		}
		g, err := ledger.Decode([]byte(doc))
		if err != nil {
			return nil, err
		}
		g.Version = version
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("failed to list grants: %w", err)
	}
	return out, nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// Once records key until ttl from now on the ledger's clock and reports
// whether it was absent (or expired). Expired keys are replaced in the same
// statement and purged now and then.
func (l *Ledger) Once(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := ledger.CheckOnce(key, ttl); err != nil {
		return false, err
	}
	now := l.clock.Now()
	nowS := ledger.FormatTime(now)
	var first bool
	err := l.write(ctx, func(tx *sql.Tx) error {
		// lastPurge is guarded by the writer token, which the batch
		// running this holds.
		purge := now.Sub(l.lastPurge) >= purgeEvery || now.Before(l.lastPurge)
		var err error
		if first, err = recordKey(ctx, tx, key, now, ttl); err != nil {
			return err
		}
		if purge {
			if _, err := tx.ExecContext(ctx, "DELETE FROM once_keys WHERE expire_time <= ?", nowS); err != nil {
				return fmt.Errorf("failed to purge expired keys: %w", err)
			}
			l.lastPurge = now
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("failed to record key %q: %w", key, err)
	}
	return first, nil
}

// recordKey records key until now+ttl unless it is there and live, and
// reports whether it recorded it. An expired key is replaced in the same
// statement.
func recordKey(ctx context.Context, tx *sql.Tx, key string, now time.Time, ttl time.Duration) (bool, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO once_keys (key, expire_time) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET expire_time = excluded.expire_time
		WHERE once_keys.expire_time <= ?`, key, ledger.FormatTime(now.Add(ttl)), ledger.FormatTime(now))
	if err != nil {
		return false, fmt.Errorf("failed to record key %q: %w", key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("failed to record key %q: %w", key, err)
	}
	return n > 0, nil
}

// lockWriter waits for this process's other writes to finish, or for ctx
// to end.
func (l *Ledger) lockWriter(ctx context.Context) error {
	select {
	case l.writer <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Ledger) unlockWriter() { <-l.writer }

// inTx runs fn in a write transaction and commits it, retrying the whole
// transaction when another process holds the lock past the busy timeout or
// won a version race. The caller holds the writer token.
func (l *Ledger) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	backoff := 5 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := l.tryTx(ctx, fn)
		if err == nil || (!errors.Is(err, errVersion) && !isBusy(err)) || attempt == maxAttempts {
			if errors.Is(err, errVersion) {
				return fmt.Errorf("failed to write: %w after %d attempts", err, attempt)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("failed to write: %w (last error: %w)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

func (l *Ledger) tryTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("failed to begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		// ErrTxDone: the context's end already rolled it back.
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			return errors.Join(err, fmt.Errorf("failed to roll back: %w", rbErr))
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("failed to commit: %w", err)
	}
	return nil
}

// isBusy reports SQLITE_BUSY and SQLITE_LOCKED, extended codes included.
func isBusy(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() & 0xff {
	case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
		return true
	}
	return false
}
