package iambinding

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/jitpipeline/jit/internal/iamqueue"
)

// releaseTimeout bounds the Release of a lease after the holder's caller
// has gone: a lease left to expire would hold the others up for
// LeaseDuration.
const releaseTimeout = 10 * time.Second

// viaQueue applies one Apply call's changes to one resource through the
// shared queue (flat combining, see the package doc): it puts them, then
// either finds them applied by the lease holder, or takes the lease and
// applies everything pending, its own changes among it.
func (w *Writer) viaQueue(ctx context.Context, g group) outcome {
	q := w.cfg.Queue
	id := randomID()
	// A holder per call, not per Writer: two calls of one Writer must not
	// both believe they hold the lease.
	holder := w.id + "-" + id
	changes := make([]Change, len(g.changes))
	for i, p := range g.changes {
		changes[i] = p.Change
	}
	data, err := json.Marshal(changes)
	if err != nil {
		return outcome{err: fmt.Errorf("failed to encode the changes: %w", err)}
	}
	failures := 0 // consecutive failed calls of the queue
	for {
		err := q.Put(ctx, g.resource, id, data) // idempotent by ID
		if err == nil {
			break
		}
		if !w.tolerate(ctx, g.resource, &failures, err) {
			return outcome{err: fmt.Errorf("failed to queue the changes: %w", err)}
		}
	}
	failures = 0
	drainFailures := 0 // failed drains, never reset: each costs a read-modify-write
	var o outcome
	for polls := 0; ; polls++ {
		res, err := q.Outcome(ctx, g.resource, id)
		if err != nil {
			if w.tolerate(ctx, g.resource, &failures, err) {
				continue
			}
			o.err = fmt.Errorf("failed to read the outcome of queued changes %s: %w", id, err)
			return o
		}
		if res.Done {
			if res.Err != "" {
				o.policy, o.err = nil, decodeResult(g.resource, res.Err)
			}
			return o
		}
		lease, err := q.Lease(ctx, g.resource, holder, w.cfg.LeaseDuration)
		if err != nil {
			if w.tolerate(ctx, g.resource, &failures, err) {
				continue
			}
			o.err = fmt.Errorf("failed to take the write lease: %w", err)
			return o
		}
		failures = 0
		if lease.Held {
			d := w.drainQueue(ctx, g.resource, g.client, holder, lease, id)
			o.writes += d.writes
			if d.policy != nil {
				o.policy = d.policy
			}
			if d.err != nil {
				// The lease is released; the entry, if still pending, is
				// the next holder's, who may be this call after a pause.
				if w.tolerate(ctx, g.resource, &drainFailures, d.err) {
					continue
				}
				o.err = d.err
				return o
			}
			continue
		}
		if err := gax.Sleep(ctx, w.pollPause(polls)); err != nil {
			o.err = fmt.Errorf("gave up waiting for queued changes %s: %w", id, err)
			return o
		}
	}
}

// tolerate decides whether a waiter keeps waiting after the queue failed
// to answer: a store under load may time out or abort a read now and then
// (Firestore: "Transaction lock timeout" while the holder commits), which
// is no reason to give an activation up. Up to MaxAttempts consecutive
// failures are waited out, each after a poll pause; it reports false
// once they are spent, when ctx ends, and for an entry the queue does not
// know (its outcome is lost: waiting will not bring it back).
func (w *Writer) tolerate(ctx context.Context, resource string, failures *int, err error) bool {
	*failures++
	if *failures >= w.cfg.MaxAttempts || ctx.Err() != nil || errors.Is(err, iamqueue.ErrUnknown) {
		return false
	}
	w.log.InfoContext(ctx, "the IAM write queue did not answer; looking again", "resource", resource,
		"failures", *failures, "error", err)
	return gax.Sleep(ctx, w.pollPause(*failures)) == nil
}

// pollPause draws a waiting caller's pause before its next look, at
// random in [p/5, p], where p is PollInterval for the first four looks and
// then grows by half each time up to 4 × PollInterval: the waiters' looks
// spread out, and a crowd of waiters behind a long drain reads the queue a
// few times a second each rather than dozens.
func (w *Writer) pollPause(polls int) time.Duration {
	p := w.cfg.PollInterval
	for i := 4; i < polls && p < 4*w.cfg.PollInterval; i++ {
		p += p / 2
	}
	p = min(p, 4*w.cfg.PollInterval)
	lo := p / 5
	return lo + rand.N(p-lo+1) //nolint:gosec // jitter, not a secret
}

// drained is what a lease holder's drain did.
type drained struct {
	writes int
	policy *iampb.Policy // as written by the batch that held the own entry, if it succeeded
	err    error
}

// drainQueue is the lease holder's loop: one read-modify-write for all
// pending entries (up to MaxBatch), their outcomes recorded, the lease
// renewed, until nothing is pending or the lease is lost; then the lease
// is released. own is the holder's own entry.
func (w *Writer) drainQueue(ctx context.Context, resource string, client IAMClient, holder string, lease iamqueue.Lease, own string) (d drained) {
	q := w.cfg.Queue
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		if err := q.Release(rctx, resource, holder); err != nil {
			w.log.WarnContext(ctx, "failed to release the IAM write lease; it ends when it expires",
				"resource", resource, "holder", holder, "error", err)
		}
	}()
	pace := &pacer{interval: w.cfg.MinWriteInterval}
	if lease.SinceWrite < w.cfg.MinWriteInterval {
		// The last holder wrote moments ago: its slot is honoured. A
		// negative SinceWrite (that holder's clock is ahead) waits one
		// interval, no more.
		pace.next = time.Now().Add(min(w.cfg.MinWriteInterval-lease.SinceWrite, w.cfg.MinWriteInterval))
	}
	for {
		entries, err := q.Pending(ctx, resource, w.cfg.MaxBatch)
		if err != nil {
			d.err = fmt.Errorf("failed to read the write queue: %w", err)
			return d
		}
		if len(entries) == 0 {
			return d
		}
		results, policy, writes := w.applyEntries(ctx, resource, client, entries, pace, own)
		d.writes += writes
		if policy != nil {
			d.policy = policy
		}
		if ctx.Err() != nil {
			// The outcomes would be this caller's cancellation, not facts
			// about the changes: they stay pending for the next holder.
			d.err = fmt.Errorf("failed to update the IAM policy of %s: %w", resource, context.Cause(ctx))
			return d
		}
		if err := q.Done(ctx, resource, results, writes > 0); err != nil {
			d.err = fmt.Errorf("failed to record the outcomes of %d queued changes: %w", len(results), err)
			return d
		}
		l, err := q.Lease(ctx, resource, holder, w.cfg.LeaseDuration)
		if err != nil {
			d.err = fmt.Errorf("failed to renew the write lease: %w", err)
			return d
		}
		if !l.Held {
			// It expired mid-way and another writer took over; the
			// outcomes recorded stand, the rest is theirs now.
			w.log.WarnContext(ctx, "lost the IAM write lease to another writer", "resource", resource, "holder", holder)
			return d
		}
	}
}

// applyEntries applies queued entries in one read-modify-write and
// returns each entry's result for Done. If IAM rejects the combined write
// for a reason other than a conflict, each entry is applied on its own,
// so that one bad change fails only its own caller. policy is the policy
// written with the own entry, when that succeeded.
func (w *Writer) applyEntries(ctx context.Context, resource string, client IAMClient, entries []iamqueue.Entry, pace *pacer, own string) (results map[string]string, policy *iampb.Policy, writes int) {
	results = make(map[string]string, len(entries))
	var reqs []*request
	var ids []string
	for _, e := range entries {
		changes, err := decodeEntry(resource, e.Changes)
		if err != nil {
			results[e.ID] = encodeResult(fmt.Errorf("invalid queued changes %s: %w", e.ID, err))
			continue
		}
		reqs = append(reqs, &request{ctx: ctx, changes: changes})
		ids = append(ids, e.ID)
	}
	if len(reqs) == 0 {
		return results, nil, 0
	}
	p, n, rejected, err := w.readModifyWrite(ctx, resource, client, reqs, pace)
	writes += n
	if err != nil && rejected && len(reqs) > 1 {
		w.log.WarnContext(ctx, "IAM rejected a combined policy write; applying the queued changes one by one",
			"resource", resource, "entries", len(reqs), "error", err)
		for i := range reqs {
			p, n, _, err := w.readModifyWrite(ctx, resource, client, reqs[i:i+1], pace)
			writes += n
			results[ids[i]] = encodeResult(err)
			if err == nil && ids[i] == own {
				policy = proto.Clone(p).(*iampb.Policy)
			}
		}
		return results, policy, writes
	}
	for _, id := range ids {
		results[id] = encodeResult(err)
		if err == nil && id == own {
			policy = p
		}
	}
	return results, policy, writes
}

// decodeEntry turns an entry's JSON back into planned changes, checking
// them again: the queue is outside this process.
func decodeEntry(resource string, data []byte) ([]planned, error) {
	var changes []Change
	if err := json.Unmarshal(data, &changes); err != nil {
		return nil, fmt.Errorf("failed to decode: %w", err)
	}
	out := make([]planned, 0, len(changes))
	var errs []error
	for i, c := range changes {
		if c.Resource != resource {
			errs = append(errs, fmt.Errorf("change %d is for %s", i, c.Resource))
			continue
		}
		p, err := newPlanned(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("change %d (%s): %w", i, c.Key, err))
			continue
		}
		p.index = i
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

// queuedResult is an entry's failure as recorded in the queue: enough to
// give its caller back an error with the same gRPC code, and a ReadError
// as one, so that Unreadable judges it as if the caller had written.
type queuedResult struct {
	Code    codes.Code `json:"code"`
	Message string     `json:"message"`
	Read    bool       `json:"read,omitempty"`
	Attempt int        `json:"attempt,omitempty"`
}

// encodeResult is "" for success, else the JSON of a queuedResult.
func encodeResult(err error) string {
	if err == nil {
		return ""
	}
	r := queuedResult{Code: status.Code(err), Message: err.Error()}
	if r.Code == codes.Unknown {
		r.Code = codes.Internal
	}
	var re *ReadError
	if errors.As(err, &re) {
		r.Read, r.Attempt, r.Message = true, re.Attempt, status.Convert(re.Err).Message()
	}
	data, jerr := json.Marshal(r)
	if jerr != nil {
		return err.Error()
	}
	return string(data)
}

// decodeResult reverses encodeResult.
func decodeResult(resource, text string) error {
	var r queuedResult
	if err := json.Unmarshal([]byte(text), &r); err != nil {
		return &appliedError{code: codes.Internal, msg: text}
	}
	if r.Read {
		return &ReadError{Resource: resource, Attempt: r.Attempt, Err: status.Error(r.Code, r.Message)}
	}
	return &appliedError{code: r.Code, msg: r.Message}
}

// appliedError is a failure another writer met applying this caller's
// changes; it keeps the gRPC code.
type appliedError struct {
	code codes.Code
	msg  string
}

func (e *appliedError) Error() string              { return "applied by the lease holder: " + e.msg }
func (e *appliedError) GRPCStatus() *status.Status { return status.New(e.code, e.Error()) }

// pacer spaces a lease holder's SetIamPolicy calls on one resource by at
// least interval, on the real clock. A nil pacer does not pace.
type pacer struct {
	interval time.Duration
	next     time.Time
}

// wait sleeps until the next write may go, or ctx ends.
func (p *pacer) wait(ctx context.Context) error {
	if p == nil {
		return nil
	}
	if d := time.Until(p.next); d > 0 {
		if err := gax.Sleep(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

// wrote records a write just made.
func (p *pacer) wrote() {
	if p != nil {
		p.next = time.Now().Add(p.interval)
	}
}

// randomID is 96 random bits in hex: a queue entry ID no other call uses.
func randomID() string {
	var b [12]byte
	_, _ = crand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}
