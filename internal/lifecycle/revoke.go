package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/iambinding"
)

// Reasons a grant is ended.
const (
	ReasonEnd      = "end"      // its time is up
	ReasonWithdraw = "withdraw" // the requester ended it
	ReasonRevoke   = "revoke"   // an administrator (or a failed activation) ended it
	ReasonExpired  = "expired"  // nobody approved it in time
)

// RevokeConfig is what the revoke function's service needs: the IAM
// writer that removes bindings and the Cloud Tasks client of the task
// chain. It never calls a workflow back.
type RevokeConfig struct {
	Common
	Privileged
}

// Validate reports every missing dependency.
func (c RevokeConfig) Validate() error {
	return errors.Join(slices.Concat(c.Common.problems(), c.Privileged.problems())...)
}

// RevokeService is the revoke function: revoke.requested, the revocation
// tasks and the sweep.
type RevokeService struct{ *privileged }

// NewRevoke builds the revoke service; a missing dependency is an error
// naming it.
func NewRevoke(cfg RevokeConfig) (*RevokeService, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("lifecycle: revoke service: %w", err)
	}
	return &RevokeService{newPrivileged(newCore(cfg.Common, Callers{}, Resume{}, nil), cfg.Privileged)}, nil
}

// Revoke is the revoke function, for the workflow's revoke.requested
// command, the revocation task, the sweep and withdrawals: it removes what
// the grant added (keeping what other active grants of the same user
// need), reads the policy back, and records the verified removal and the
// final state. What happens is decided by the grant's state, the reason
// only says why it is asked: an ACTIVE grant ends (reason end, once its
// time is up), is withdrawn or revoked; WITHDRAWING and REVOKING finish;
// an activation that did not complete fails and is cleaned up; a final
// grant whose removal was never verified is verified again. It is
// idempotent; a grant whose time has not come is returned unchanged.
func (s *RevokeService) Revoke(ctx context.Context, id, reason, actor string) (*grant.Grant, error) {
	return s.revoke(ctx, id, reason, actor)
}

// revoke is Revoke, which the grant service also does when a grant is
// withdrawn while its binding is being written.
func (s *privileged) revoke(ctx context.Context, id, reason, actor string) (*grant.Grant, error) {
	g, err := s.ledger.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var target grant.State
	var eventType string
	switch {
	case g.State == grant.ApprovalAwaited && reason == ReasonExpired:
		if now.Before(g.ApprovalDeadline) {
			// Early (clocks differ by a little): fail so the command is
			// delivered again after a backoff, when the window is over.
			return nil, fmt.Errorf("the approval window of %s closes at %s", id, g.ApprovalDeadline.Format(time.RFC3339Nano))
		}
		return s.transition(ctx, id, grant.ApprovalAwaited, grant.Expired, events.TypeExpired, actor, "no decision within the approval window")
	case reason == ReasonExpired, g.State == grant.ApprovalAwaited, g.State == grant.Scheduled:
		return g, nil // decided (or withdrawn) before the window closed; nothing held
	case g.State == grant.Active && reason == ReasonEnd:
		if now.Before(g.EndTime) {
			return g, nil // not yet: the caller (a task) retries or chains
		}
		target, eventType = grant.Ended, events.TypeEnded
	case g.State == grant.Active && reason == ReasonWithdraw:
		if g, err = s.transition(ctx, id, grant.Active, grant.Withdrawing, events.TypeWithdrawing, actor, "withdrawn by the requester"); err != nil {
			return nil, err
		}
		target, eventType = grant.Withdrawn, events.TypeWithdrawn
	case g.State == grant.Active:
		if g, err = s.transition(ctx, id, grant.Active, grant.Revoking, events.TypeRevoking, actor, "revocation requested"); err != nil {
			return nil, err
		}
		target, eventType = grant.Revoked, events.TypeRevoked
	case g.State == grant.Withdrawing:
		target, eventType = grant.Withdrawn, events.TypeWithdrawn
	case g.State == grant.Revoking:
		target, eventType = grant.Revoked, events.TypeRevoked
	case g.State == grant.Activating:
		if reason == ReasonEnd && (g.EndTime.IsZero() || now.Before(g.EndTime)) {
			return g, nil // still activating within its window
		}
		// Activation never finished (the workflow gave up, or its window
		// is over): fail it and make sure nothing stays.
		msg := "activation did not complete"
		if reason == ReasonEnd {
			msg = "activation did not complete before the end of its window"
		}
		if g, err = s.transition(ctx, id, grant.Activating, grant.ActivationFailed, events.TypeActivationFailed, actor, msg); err != nil {
			return nil, err
		}
		if g.MayHoldAccess() {
			return g, s.removeAndVerify(ctx, g)
		}
		return g, nil
	case g.MayHoldAccess():
		return g, s.removeAndVerify(ctx, g)
	default:
		return g, nil // already done
	}
	if err := s.removeAndVerify(ctx, g); err != nil {
		return nil, err
	}
	g, err = s.transition(ctx, id, g.State, target, eventType, actor, fmt.Sprintf("access ended (%s)", reason))
	if err != nil {
		return nil, err
	}
	s.deleteTasks(ctx, g)
	return g, nil
}

// OnRevocationTask is the revoke function's Cloud Tasks handler. It
// returns nil — the task is done — only when the grant can no longer hold
// access (its removal verified, or it never started), or when the grant
// runs on and the next link of the task chain is scheduled. Anything else
// is an error, so Cloud Tasks delivers the task again (docs/google-cloud.md §3: the
// status code is the acknowledgement): an early delivery (TooEarlyError), a
// grant still activating, a removal that could not be verified.
func (s *RevokeService) OnRevocationTask(ctx context.Context, t RevocationTask) error {
	g, err := s.revoke(ctx, t.GrantID, ReasonEnd, "cloud-tasks")
	if err != nil {
		return err
	}
	if !g.MayHoldAccess() {
		return nil
	}
	if g.State == grant.Active && s.now().Before(g.EndTime) {
		due := t.ScheduleTime
		if due.IsZero() {
			due = g.EndTime // a task without its due time: treat it as the last link
		}
		if next := nextTaskTime(g, due); next.After(due) {
			return s.scheduleRevocation(ctx, g, due)
		}
		return &TooEarlyError{RetryAfter: g.EndTime.Sub(s.now())}
	}
	return fmt.Errorf("%s is %s and may still hold access", g.ID, g.State)
}

// transition moves the grant from one state to another, if it is still in
// the first, and publishes the event.
func (s *privileged) transition(ctx context.Context, id string, from, to grant.State, eventType, actor, msg string) (*grant.Grant, error) {
	g, err := s.ledger.Update(ctx, id, func(cur *grant.Grant) error {
		if cur.State != from {
			return grant.ErrNoChange
		}
		_, err := cur.Transition(to, eventType, s.now(), actor, msg)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.publishAfter(ctx, g)
	return g, nil
}

// removeAndVerify converges the grant's bindings to what the other grants
// still need, reads the policy back and records the verification.
func (s *privileged) removeAndVerify(ctx context.Context, g *grant.Grant) error {
	if err := s.converge(ctx, g); err != nil {
		return err
	}
	want, err := s.wanted(ctx, g.Requester, bindingKeys(g))
	if err != nil {
		return err
	}
	for i := range want {
		want[i].Windows = withoutGrant(want[i].Windows, g.ID)
	}
	checks, err := s.iam.Verify(ctx, want...)
	if err != nil {
		return fmt.Errorf("failed to read the policy back: %w", err)
	}
	var problems []string
	for _, c := range checks {
		if !c.Verified {
			problems = append(problems, c.String()+": "+c.Problem)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("revocation of %s not verified: %s", g.ID, strings.Join(problems, "; "))
	}
	now := s.now()
	g, err = s.ledger.Update(ctx, g.ID, func(cur *grant.Grant) error {
		if cur.RevocationVerified {
			return grant.ErrNoChange
		}
		cur.RevocationVerified = true
		cur.Record(events.TypeRevocationVerified, now, "revoke-function",
			fmt.Sprintf("policy read back at %s: no binding of %s outlives the grant", now.Format(time.RFC3339), g.Requester))
		return nil
	})
	if err != nil {
		return err
	}
	s.publishAfter(ctx, g)
	return nil
}

func withoutGrant(ws []iambinding.Window, id string) []iambinding.Window {
	out := ws[:0:0]
	for _, w := range ws {
		if w.GrantID != id {
			out = append(out, w)
		}
	}
	return out
}

// deleteTasks removes the pending revocation tasks of a grant that ended
// early: each link's name follows from the grant (nextTaskTime). A task
// that is gone or left behind does no harm: it finds the grant ended.
func (s *privileged) deleteTasks(ctx context.Context, g *grant.Grant) {
	if g.State == grant.Ended || g.StartTime.IsZero() {
		return
	}
	now := s.now()
	for due := g.StartTime; ; {
		next := nextTaskTime(g, due)
		if !next.After(due) {
			return
		}
		if next.After(now) {
			err := s.tasks.DeleteTask(ctx, &cloudtaskspb.DeleteTaskRequest{Name: s.taskName(g, next)})
			if err != nil && status.Code(err) != codes.NotFound {
				s.log.WarnContext(ctx, "failed to delete a revocation task; it will find the grant ended", "grant_id", g.ID, "error", err)
			}
		}
		due = next
	}
}
