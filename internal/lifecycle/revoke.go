package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/iamgrant"
)

// Reasons a grant is ended.
const (
	ReasonEnd      = "end"      // its time is up
	ReasonWithdraw = "withdraw" // the requester ended it
	ReasonRevoke   = "revoke"   // an administrator (or a failed activation) ended it
	ReasonExpired  = "expired"  // nobody approved it in time
)

// Revoke is the revoke function, for the workflow's revoke.requested
// command, the revocation task at the end time and withdrawals: it removes
// what the grant added (keeping what other active grants of the same user
// need), reads the policy back, and records the verified removal and the
// final state. It is idempotent: a grant already ended is verified again if
// its verification is missing, and otherwise left alone.
func (s *Service) Revoke(ctx context.Context, id, reason, actor string) (*grant.Grant, error) {
	g, err := s.cfg.Ledger.Get(ctx, id)
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
		g, err = s.transition(ctx, id, grant.ApprovalAwaited, grant.Expired, events.ExpiredType, actor, "no decision within the approval window")
		return g, err
	case reason == ReasonExpired:
		return g, nil // decided (or withdrawn) before the window closed
	case g.State == grant.Active && reason == ReasonEnd:
		if now.Before(g.EndTime) {
			// A chained task of a grant longer than the task horizon, or an
			// early duplicate: schedule the next link and wait.
			return g, s.scheduleRevocation(ctx, g, g.EndTime)
		}
		target, eventType = grant.Ended, events.EndedType
	case g.State == grant.Active && reason == ReasonWithdraw:
		if g, err = s.transition(ctx, id, grant.Active, grant.Withdrawing, events.WithdrawingType, actor, "withdrawn by the requester"); err != nil {
			return nil, err
		}
		target, eventType = grant.Withdrawn, events.WithdrawnType
	case g.State == grant.Active:
		if g, err = s.transition(ctx, id, grant.Active, grant.Revoking, events.RevokingType, actor, "revocation requested"); err != nil {
			return nil, err
		}
		target, eventType = grant.Revoked, events.RevokedType
	case g.State == grant.Withdrawing:
		target, eventType = grant.Withdrawn, events.WithdrawnType
	case g.State == grant.Revoking:
		target, eventType = grant.Revoked, events.RevokedType
	case g.State == grant.Activating && reason != ReasonEnd:
		// Activation never finished (timeout): make sure nothing stays.
		if g, err = s.transition(ctx, id, grant.Activating, grant.ActivationFailed, events.ActivationFailed, actor, "activation did not complete"); err != nil {
			return nil, err
		}
		return g, s.removeAndVerify(ctx, g)
	case g.State.Terminal() && !g.StartTime.IsZero() && !g.RevocationVerified:
		return g, s.removeAndVerify(ctx, g)
	default:
		return g, nil // already done, or nothing to do yet
	}
	if err := s.removeAndVerify(ctx, g); err != nil {
		return nil, err
	}
	g, err = s.transition(ctx, id, g.State, target, eventType, actor, fmt.Sprintf("access ended (%s)", reason))
	if err != nil {
		return nil, err
	}
	s.deleteTask(ctx, g)
	return g, nil
}

// transition moves the grant from one state to another, if it is still in
// the first, and publishes the event.
func (s *Service) transition(ctx context.Context, id string, from, to grant.State, eventType, actor, msg string) (*grant.Grant, error) {
	g, err := s.cfg.Ledger.Update(ctx, id, func(cur *grant.Grant) error {
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
func (s *Service) removeAndVerify(ctx context.Context, g *grant.Grant) error {
	if s.cfg.IAM == nil {
		return errors.New("revoke: no IAM writer configured")
	}
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
	checks, err := s.cfg.IAM.Verify(ctx, want...)
	if err != nil {
		return fmt.Errorf("failed to read the policy back: %w", err)
	}
	var problems []string
	for _, c := range checks {
		if !c.Verified {
			problems = append(problems, c.Key.String()+": "+c.Problem)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("revocation of %s not verified: %s", g.ID, strings.Join(problems, "; "))
	}
	now := s.now()
	g, err = s.cfg.Ledger.Update(ctx, g.ID, func(cur *grant.Grant) error {
		if cur.RevocationVerified {
			return grant.ErrNoChange
		}
		cur.RevocationVerified = true
		cur.Record(events.RevocationVerified, now, "revoke-function",
			fmt.Sprintf("policy read back at %s: no binding of %s outlives the grant", now.Format(time.RFC3339), g.Requester))
		return nil
	})
	if err != nil {
		return err
	}
	s.publishAfter(ctx, g)
	return nil
}

func withoutGrant(ws []iamgrant.Window, id string) []iamgrant.Window {
	out := ws[:0:0]
	for _, w := range ws {
		if w.GrantID != id {
			out = append(out, w)
		}
	}
	return out
}

// deleteTask removes the revocation task of a grant that ended early.
func (s *Service) deleteTask(ctx context.Context, g *grant.Grant) {
	if s.cfg.Tasks == nil || g.State == grant.Ended {
		return
	}
	err := s.cfg.Tasks.DeleteTask(ctx, &cloudtaskspb.DeleteTaskRequest{Name: fmt.Sprintf("%s/tasks/revoke-%s", s.cfg.RevokeQueue, g.ID)})
	if err != nil && status.Code(err) != codes.NotFound {
		s.log.WarnContext(ctx, "failed to delete the revocation task; it will find the grant ended", "grant_id", g.ID, "error", err)
	}
}
