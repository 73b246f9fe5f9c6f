package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/policy"
)

// MaxReason bounds a decision's reason (characters).
const MaxReason = 1024

// Approve records the caller's approval of a request. The caller's right
// is checked against the policy in force now, never the one at request
// time; the requester never approves their own request unless the policy
// grants them APPROVE_SELF. When enough approvals are in, the grant moves
// to ACTIVATING and the workflow resumes.
func (s *Service) Approve(ctx context.Context, caller, id, reason string) (*grant.Grant, error) {
	return s.decide(ctx, caller, id, reason, true)
}

// Deny records a denial: the request ends DENIED with the reason.
func (s *Service) Deny(ctx context.Context, caller, id, reason string) (*grant.Grant, error) {
	if strings.TrimSpace(reason) == "" {
		return nil, invalid("reason", "is required: tell the requester why")
	}
	return s.decide(ctx, caller, id, reason, false)
}

func (s *Service) decide(ctx context.Context, caller, id, reason string, approve bool) (*grant.Grant, error) {
	reason = strings.TrimSpace(reason)
	if utf8.RuneCountInString(reason) > MaxReason {
		return nil, invalid("reason", "must be at most %d characters", MaxReason)
	}
	if !grant.ValidID(id) {
		return nil, notFound("id", "no grant %q", id)
	}
	g, err := s.cfg.Ledger.Get(ctx, id)
	if errors.Is(err, grant.ErrNotFound) {
		return nil, notFound("id", "no grant %q", id)
	}
	if err != nil {
		return nil, err
	}
	approver, err := s.subject(ctx, caller)
	if err != nil {
		return nil, err
	}
	requester, err := s.subject(ctx, g.Requester)
	if err != nil {
		return nil, err
	}
	pol, err := s.policy(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := pol.Approve(policy.Approval{
		Approver: approver, Requester: requester, Entitlement: g.Entitlement,
		Duration: g.RequestedDuration, Inputs: g.Inputs,
	}); err != nil {
		var denied *policy.Denied
		if errors.As(err, &denied) || errors.Is(err, policy.ErrUnknownEntitlement) {
			if ok, _ := s.maySee(ctx, caller, g); !ok {
				return nil, notFound("id", "no grant %q", id)
			}
			return nil, forbidden("id", "you may not decide on %s: %v", id, err)
		}
		return nil, err
	}
	now := s.now()
	g, err = s.cfg.Ledger.Update(ctx, id, func(cur *grant.Grant) error {
		if cur.State != grant.ApprovalAwaited {
			return conflict("%s is %s, not awaiting approval", id, cur.State)
		}
		if !cur.ApprovalDeadline.IsZero() && !now.Before(cur.ApprovalDeadline) {
			return conflict("the approval window of %s has passed", id)
		}
		if cur.DecidedBy(approver.Email) {
			return conflict("you have already decided on %s", id)
		}
		cur.Decisions = append(cur.Decisions, grant.Decision{Approver: approver.Email, Approved: approve, Reason: reason, Time: now})
		if !approve {
			_, err := cur.Transition(grant.Denied, events.DeniedType, now, approver.Email, reason)
			return err
		}
		have, need := len(cur.Approvals()), max(cur.RequiredApprovals, 1)
		msg := fmt.Sprintf("approved by %s (%d of %d)", approver.Email, have, need)
		if reason != "" {
			msg += ": " + reason
		}
		if have < need {
			cur.Record(events.Approved, now, approver.Email, msg)
			return nil
		}
		_, err := cur.Transition(grant.Activating, events.Approved, now, approver.Email, msg)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.publishAfter(ctx, g)
	if g.State != grant.ApprovalAwaited {
		if err := s.callback(ctx, g.ApprovalCallback, map[string]any{"state": g.State}); err != nil {
			s.log.WarnContext(ctx, "workflow not resumed after decision; the approval.requested handler will", "grant_id", id, "error", err)
		}
	}
	return g, nil
}

// OnApprovalRequested handles the workflow's approval.requested command:
// it remembers the callback URL, notifies the approvers and, if the
// request was decided (or withdrawn) before the command arrived, resumes
// the workflow at once.
func (s *Service) OnApprovalRequested(ctx context.Context, d *events.Data) error {
	duplicate := false
	g, err := s.cfg.Ledger.Update(ctx, d.GrantID, func(cur *grant.Grant) error {
		owner := cur.Execution
		if duplicate = !claim(cur, d.CallbackURL); duplicate {
			return grant.ErrNoChange
		}
		if cur.ApprovalCallback == d.CallbackURL && owner == cur.Execution {
			return grant.ErrNoChange
		}
		cur.ApprovalCallback = d.CallbackURL
		return nil
	})
	if errors.Is(err, grant.ErrNotFound) {
		s.log.ErrorContext(ctx, "approval requested for an unknown grant", "grant_id", d.GrantID)
		return nil // nothing will ever make this succeed
	}
	if err != nil {
		return err
	}
	if duplicate {
		return s.callback(ctx, d.CallbackURL, map[string]any{"state": StateDuplicate})
	}
	if g.State != grant.ApprovalAwaited {
		return s.callback(ctx, g.ApprovalCallback, map[string]any{"state": g.State})
	}
	first, err := s.cfg.Ledger.Once(ctx, "notify/"+g.ID, 30*24*time.Hour)
	if err != nil {
		return err
	}
	if first {
		// Mail comes with the notifications issue; the approvers are in the
		// event and in GET /v1/grants?view=approvable.
		s.log.InfoContext(ctx, "approval requested", "grant_id", g.ID, "approvers", strings.Join(g.Approvers, ","))
	}
	return nil
}
