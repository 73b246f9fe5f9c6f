package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jitpipeline/jit/internal/emailaddr"
	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/policy"
	"github.com/jitpipeline/jit/internal/usertext"
)

// MaxReason bounds a decision's, a revocation's and a withdrawal's reason
// (characters).
const MaxReason = 1024

// reasonText checks a reason people will read in the timeline and in
// mail: bounded, and not blank-looking; a required one (deny) must be
// given. An absent optional reason is "".
func reasonText(reason string, required bool) (string, error) {
	if reason == "" && !required {
		return "", nil
	}
	r, err := usertext.Clean(reason, MaxReason)
	if err != nil {
		if required {
			return "", invalid("reason", "is required, to tell the requester why: %v", err)
		}
		return "", invalid("reason", "%v", err)
	}
	return r, nil
}

// ApprovalConfig is what the approval function's service needs.
type ApprovalConfig struct {
	Common
	Callers
	Resume
	// Executions confirms that a command's callback belongs to the
	// execution running the grant.
	Executions Executions
}

// Validate reports every missing dependency.
func (c ApprovalConfig) Validate() error {
	return errors.Join(slices.Concat(c.Common.problems(), c.Callers.problems(), c.Resume.problems(),
		required(need{"Executions", c.Executions != nil}))...)
}

// ApprovalService is the approval function: approvers' decisions and the
// workflow's approval.requested command.
type ApprovalService struct{ *core }

// NewApproval builds the approval service; a missing dependency is an
// error naming it.
func NewApproval(cfg ApprovalConfig) (*ApprovalService, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("lifecycle: approval service: %w", err)
	}
	return &ApprovalService{newCore(cfg.Common, cfg.Callers, cfg.Resume, cfg.Executions)}, nil
}

// Approve records the caller's approval of a request. The caller's right
// is checked against the policy in force now, never the one at request
// time; the requester never approves their own request unless the policy
// grants them APPROVE_SELF. The requester must still be allowed the
// entitlement, with the privileges they asked for: a request the policy
// would refuse now, or whose entitlement changed its privileges since, can
// no longer be approved (409; approvers approved what they were shown,
// and the requester asks again). When enough approvals are in, the grant
// moves to ACTIVATING — if the entitlement's concurrency limit leaves
// room, which the ledger checks atomically — and the workflow resumes.
func (s *ApprovalService) Approve(ctx context.Context, caller Caller, id, reason string) (*grant.Grant, error) {
	return s.decide(ctx, caller, id, reason, true)
}

// Deny records a denial: the request ends DENIED with the reason.
func (s *ApprovalService) Deny(ctx context.Context, caller Caller, id, reason string) (*grant.Grant, error) {
	return s.decide(ctx, caller, id, reason, false)
}

func (s *ApprovalService) decide(ctx context.Context, caller Caller, id, reason string, approve bool) (*grant.Grant, error) {
	reason, err := reasonText(reason, !approve)
	if err != nil {
		return nil, err
	}
	if !grant.ValidID(id) {
		return nil, notFound("id", "no grant %q", id)
	}
	g, err := s.ledger.Get(ctx, id)
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
	requester, err := s.requesterSubject(ctx, g)
	if err != nil {
		return nil, err
	}
	pol, err := s.decisionPolicy(ctx, g.Entitlement)
	if err != nil {
		return nil, err
	}
	d, err := pol.Approve(policy.Approval{
		Approver: approver, Requester: requester, Entitlement: g.Entitlement,
		Duration: g.RequestedDuration, Inputs: g.Inputs,
	})
	if err != nil {
		var denied *policy.Denied
		if errors.As(err, &denied) || errors.Is(err, policy.ErrUnknownEntitlement) {
			if ok, _ := s.maySee(ctx, caller, g); !ok {
				return nil, notFound("id", "no grant %q", id)
			}
			if errors.As(err, &denied) && denied.Requester {
				return nil, conflict("%s can no longer be approved: %v", id, err)
			}
			return nil, forbidden("id", "you may not decide on %s: %v", id, err)
		}
		return nil, err
	}
	if len(g.Reviewers) > 0 && !slices.ContainsFunc(g.Reviewers, func(r string) bool { return sameEmail(r, approver.Email) }) {
		// JIT Access's multi-party approval: only the peers the requester
		// chose decide (docs/jit-access.md §1.8).
		if ok, _ := s.maySee(ctx, caller, g); !ok {
			return nil, notFound("id", "no grant %q", id)
		}
		return nil, forbidden("id", "only the reviewers %s chose may decide on %s", g.Requester, id)
	}
	if approve && !samePrivileges(privileges(d.Group), g.Privileges) {
		return nil, conflict("%s can no longer be approved: the privileges of %s changed since it was requested; the requester must ask again", id, g.Entitlement)
	}
	now, entitlement := s.now(), g.Entitlement
	g, err = s.ledger.Update(ctx, id, func(cur *grant.Grant) error {
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
			_, err := cur.Transition(grant.Denied, events.TypeDenied, now, approver.Email, reason)
			return err
		}
		// The policy in force says how many approvals it takes now.
		cur.RequiredApprovals = max(d.Approvals.Required, 1)
		have, need := len(cur.Approvals()), cur.RequiredApprovals
		msg := fmt.Sprintf("approved by %s (%d of %d)", approver.Email, have, need)
		if reason != "" {
			msg += ": " + strconv.Quote(reason)
		}
		if have < need {
			cur.Record(events.TypeApproved, now, approver.Email, msg)
			return nil
		}
		cur.ConcurrencyLimit = d.Group.MaxActive()
		_, err := cur.Transition(grant.Activating, events.TypeApproved, now, approver.Email, msg)
		return err
	})
	if errors.Is(err, grant.ErrLimit) {
		return nil, refusal(ErrConflict, "entitlement", "%s cannot be approved now: %s allows at most %d active grants at once (%v); approve again when one has ended", id, entitlement, d.Group.MaxActive(), err)
	}
	if err != nil {
		return nil, err
	}
	s.publishAfter(ctx, g)
	if g.State != grant.ApprovalAwaited {
		if err := s.callback(ctx, g.Execution, g.ApprovalCallback, map[string]any{"state": g.State}); err != nil {
			s.log.WarnContext(ctx, "workflow not resumed after decision; the approval.requested handler will", "grant_id", id, "error", err)
		}
	}
	return g, nil
}

// OnApprovalRequested handles the workflow's approval.requested command:
// it remembers the callback URL — only one of the execution that runs the
// grant —, notifies the approvers and, if the request was decided (or
// withdrawn) before the command arrived, resumes the workflow at once.
func (s *ApprovalService) OnApprovalRequested(ctx context.Context, d *events.Data) error {
	g, err := s.ledger.Get(ctx, d.GrantID)
	if errors.Is(err, grant.ErrNotFound) {
		s.log.ErrorContext(ctx, "approval requested for an unknown grant", "grant_id", d.GrantID)
		return nil // nothing will ever make this succeed
	}
	if err != nil {
		return err
	}
	exec, err := s.commandExecution(ctx, g, d.CallbackURL)
	if errors.Is(err, errNotOurExecution) {
		s.refuseCommand(ctx, d, err)
		return nil
	}
	if err != nil {
		return err
	}
	duplicate := false
	g, err = s.ledger.Update(ctx, d.GrantID, func(cur *grant.Grant) error {
		changed := false
		if cur.Execution == "" {
			cur.Execution, changed = exec, true
		}
		if duplicate = cur.Execution != exec; duplicate {
			return grant.ErrNoChange
		}
		if cur.ApprovalCallback != d.CallbackURL {
			cur.ApprovalCallback, changed = d.CallbackURL, true
		}
		if !changed {
			return grant.ErrNoChange
		}
		return nil
	})
	if err != nil {
		return err
	}
	if duplicate {
		return s.callback(ctx, exec, d.CallbackURL, map[string]any{"state": StateDuplicate})
	}
	if g.State != grant.ApprovalAwaited {
		return s.callback(ctx, g.Execution, g.ApprovalCallback, map[string]any{"state": g.State})
	}
	first, err := s.ledger.Once(ctx, "notify/"+g.ID, 30*24*time.Hour)
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

// Approvers are the people who may decide on g now, to be told of it: the
// APPROVE_OTHERS principals the policy in force names for its entitlement,
// groups expanded to their members, each then checked as the approver it
// would be (the approve constraints hold for them, the requester is still
// allowed). The requester is never among them — a request its requester
// may approve is self-approved and asks nobody. An entitlement the policy
// no longer has gives nobody.
func (s *ApprovalService) Approvers(ctx context.Context, g *grant.Grant) ([]string, error) {
	pol, err := s.decisionPolicy(ctx, g.Entitlement)
	if err != nil {
		return nil, err
	}
	grp, ok := pol.Group(g.Entitlement)
	if !ok {
		return nil, nil
	}
	requester, err := s.requesterSubject(ctx, g)
	if err != nil {
		return nil, err
	}
	principals := grp.Approvers(g.Requester)
	if len(g.Reviewers) > 0 {
		// The peers the requester chose, and nobody else, are asked —
		// those still allowed to decide.
		principals = nil
		for _, r := range g.Reviewers {
			principals = append(principals, policy.Principal{Type: policy.UserPrincipal, Value: emailaddr.Key(r)})
		}
	}
	candidates, err := s.people(ctx, principals, g.Requester)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, key := range candidates {
		approver, err := s.subject(ctx, Caller{Email: key})
		if err != nil {
			return nil, err
		}
		if _, err := pol.Approve(policy.Approval{
			Approver: approver, Requester: requester, Entitlement: g.Entitlement,
			Duration: g.RequestedDuration, Inputs: g.Inputs,
		}); err != nil {
			continue // not allowed to decide on this request now
		}
		out = append(out, key)
	}
	slices.Sort(out)
	return out, nil
}
