package iambinding

import (
	"context"
	"fmt"
	"sync/atomic"

	"cloud.google.com/go/iam/apiv1/iampb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// request is one Apply (or Purge) call's share of one resource's write.
type request struct {
	ctx     context.Context //nolint:containedctx // the caller's context, to drop abandoned requests
	changes []planned
	purge   bool
	done    chan outcome // buffered: the batch never blocks on a caller that left
}

type outcome struct {
	policy *iampb.Policy
	writes int
	err    error
}

// queue holds the requests for one resource that wait for its next
// read-modify-write. A queue exists in Writer.queues exactly while a
// goroutine is draining it.
type queue struct {
	pending []*request
}

// submit queues req for resource and starts the resource's drain loop if
// none is running. Requests that arrive while a write is in flight are
// all applied by the next one.
func (w *Writer) submit(resource string, client IAMClient, req *request) {
	w.mu.Lock()
	q, running := w.queues[resource]
	if !running {
		q = &queue{}
		w.queues[resource] = q
	}
	q.pending = append(q.pending, req)
	if running && w.onQueued != nil {
		w.onQueued(resource, len(q.pending))
	}
	w.mu.Unlock()
	if !running {
		go w.drain(resource, client)
	}
}

// drain applies the resource's queued requests, all that are waiting at
// once, until the queue is empty.
func (w *Writer) drain(resource string, client IAMClient) {
	for {
		w.mu.Lock()
		q := w.queues[resource]
		batch := q.pending
		q.pending = nil
		if len(batch) == 0 {
			delete(w.queues, resource)
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		w.process(resource, client, batch)
	}
}

// process applies a batch in one read-modify-write. If IAM rejects the
// combined write for a reason other than a conflict, each request is
// retried on its own, so that one bad change fails only its own caller.
func (w *Writer) process(resource string, client IAMClient, batch []*request) {
	var live []*request
	for _, r := range batch {
		if r.ctx.Err() == nil {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return
	}
	ctx, stop := batchContext(live)
	defer stop()
	policy, writes, rejected, err := w.readModifyWrite(ctx, resource, client, live, nil)
	if err != nil && rejected && len(live) > 1 {
		w.log.WarnContext(ctx, "IAM rejected a coalesced policy write; applying its requests one by one",
			"resource", resource, "requests", len(live), "error", err)
		carry := writes // the failed combined write is counted once
		for i, r := range live {
			if r.ctx.Err() != nil {
				continue
			}
			p, n, _, err := w.readModifyWrite(r.ctx, resource, client, live[i:i+1], nil)
			r.done <- outcome{policy: p, writes: n + carry, err: err}
			carry = 0
		}
		return
	}
	for i, r := range live {
		o := outcome{err: err}
		if i == 0 {
			o.writes = writes
		}
		if err == nil {
			o.policy = proto.Clone(policy).(*iampb.Policy)
		}
		r.done <- o
	}
}

// batchContext returns a context for the RPCs of a batch that keeps the
// values of the first request's context and is cancelled once every
// request's context is: a batch outlives any one caller who gives up, but
// not all of them.
func batchContext(reqs []*request) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(reqs[0].ctx))
	var left atomic.Int64
	left.Store(int64(len(reqs)))
	stops := make([]func() bool, len(reqs))
	for i, r := range reqs {
		stops[i] = context.AfterFunc(r.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, s := range stops {
			s()
		}
		cancel()
	}
}

// readModifyWrite reads the policy at version 3, applies the requests and,
// if anything changed, purges expired activations and writes the policy
// back at version 3 with the etag of the read. ABORTED (the etag is stale)
// and UNAVAILABLE restart the whole cycle after a backoff, up to
// MaxAttempts cycles; any other error ends it. rejected reports that the
// final error came from SetIamPolicy. A non-nil pace spaces the writes
// (a queue's lease holder: see the package doc).
func (w *Writer) readModifyWrite(ctx context.Context, resource string, client IAMClient, reqs []*request, pace *pacer) (policy *iampb.Policy, writes int, rejected bool, err error) {
	bo := w.cfg.Backoff // a fresh copy: gax.Backoff keeps its period in itself
	for attempt := 1; ; attempt++ {
		// The pause for the write slot comes before the read, so that the
		// etag is as fresh as can be when the write goes.
		if err := pace.wait(ctx); err != nil {
			return nil, writes, false, fmt.Errorf("failed to update the IAM policy of %s: gave up waiting for its write slot: %w", resource, err)
		}
		read, err := client.GetIamPolicy(ctx, &iampb.GetIamPolicyRequest{
			Resource: resource,
			Options:  &iampb.GetPolicyOptions{RequestedPolicyVersion: 3},
		})
		if err != nil {
			if retryable(err) && attempt < w.cfg.MaxAttempts {
				if err := w.pause(ctx, &bo, resource, attempt, err); err != nil {
					return nil, writes, false, err
				}
				continue
			}
			return nil, writes, false, &ReadError{Resource: resource, Attempt: attempt, Err: err}
		}

		now := w.cfg.Now()
		next := proto.Clone(read).(*iampb.Policy)
		changed := 0
		purge := false
		for _, r := range reqs {
			purge = purge || r.purge
			for _, c := range r.changes {
				if c.apply(next, now) {
					changed++
				}
			}
		}
		purged := 0
		if changed > 0 || purge {
			purged = purgeExpired(next, now)
		}
		if changed == 0 && purged == 0 {
			return read, writes, false, nil
		}
		// Version 3 always (docs/google-cloud.md §1: a lower version strips
		// conditions) and the etag of the read, so a concurrent change is
		// refused rather than overwritten.
		next.Version = 3
		next.Etag = read.GetEtag()
		written, err := client.SetIamPolicy(ctx, &iampb.SetIamPolicyRequest{Resource: resource, Policy: next})
		pace.wrote()
		writes++
		if err == nil {
			w.log.InfoContext(ctx, "wrote IAM policy", "resource", resource, "requests", len(reqs),
				"keys_changed", changed, "expired_purged", purged, "attempt", attempt)
			return written, writes, false, nil
		}
		if retryable(err) && attempt < w.cfg.MaxAttempts {
			if err := w.pause(ctx, &bo, resource, attempt, err); err != nil {
				return nil, writes, false, err
			}
			continue
		}
		// Only a refusal of this policy is worth trying change by change:
		// conflicts, outages and quota that outlast the retries would
		// refuse every single change too, and multiply the writes.
		return nil, writes, !retryable(err), fmt.Errorf("failed to write the IAM policy of %s (attempt %d): %w", resource, attempt, err)
	}
}

// read reads a policy at version 3, retrying UNAVAILABLE.
func (w *Writer) read(ctx context.Context, resource string, client IAMClient) (*iampb.Policy, error) {
	bo := w.cfg.Backoff
	for attempt := 1; ; attempt++ {
		p, err := client.GetIamPolicy(ctx, &iampb.GetIamPolicyRequest{
			Resource: resource,
			Options:  &iampb.GetPolicyOptions{RequestedPolicyVersion: 3},
		})
		if err == nil {
			return p, nil
		}
		if status.Code(err) != codes.Unavailable || attempt >= w.cfg.MaxAttempts {
			return nil, fmt.Errorf("failed to read the IAM policy of %s (attempt %d): %w", resource, attempt, err)
		}
		if err := w.pause(ctx, &bo, resource, attempt, err); err != nil {
			return nil, err
		}
	}
}

// retryable: ABORTED is a concurrent policy change (docs/google-cloud.md §1, "retry
// the whole read-modify-write with exponential backoff"); UNAVAILABLE is
// transient; RESOURCE_EXHAUSTED is the Resource Manager write quota (10/s
// and 600/min per consumer project, docs/google-cloud.md §1), which the
// backoff waits out. A retry after an UNAVAILABLE write that did succeed
// is safe: the re-read shows the change made and nothing is written again.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Aborted, codes.Unavailable, codes.ResourceExhausted:
		return true
	}
	return false
}

// pause logs a retry and sleeps for the next backoff period.
func (w *Writer) pause(ctx context.Context, bo *gax.Backoff, resource string, attempt int, cause error) error {
	d := bo.Pause()
	w.log.InfoContext(ctx, "retrying IAM policy read-modify-write", "resource", resource,
		"attempt", attempt, "code", status.Code(cause).String(), "backoff", d.String())
	if err := gax.Sleep(ctx, d); err != nil {
		return fmt.Errorf("failed to update the IAM policy of %s: gave up waiting to retry after %w: %w", resource, cause, err)
	}
	return nil
}

// ReadError is the failure to read a resource's policy before writing
// it: nothing was written there by that call.
type ReadError struct {
	Resource string
	Attempt  int
	Err      error
}

func (e *ReadError) Error() string {
	return fmt.Sprintf("failed to read the IAM policy of %s (attempt %d): %v", e.Resource, e.Attempt, e.Err)
}

func (e *ReadError) Unwrap() error { return e.Err }

// Unreadable lists the resources of err (an Apply error, joined or
// wrapped) whose policy could not be read because IAM answered NOT_FOUND
// or PERMISSION_DENIED ("or it may not exist"): that Apply wrote nothing
// there, and no retry will.
func Unreadable(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		// A walk of the whole tree by hand: errors.As stops at the first
		// ReadError, and every one of them is wanted.
		switch e := err.(type) { //nolint:errorlint // this is the unwrapping, see above

		case nil:
		case *ReadError:
			if c := status.Code(e.Err); c == codes.NotFound || c == codes.PermissionDenied {
				out = append(out, e.Resource)
			}
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}
