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
	"github.com/jitpipeline/jit/internal/isoduration"
	"github.com/jitpipeline/jit/internal/policy"
)

// MaxJustification bounds the justification's length (characters).
const MaxJustification = 1024

// Entitlement is what a caller may request, as GET /v1/entitlements shows it.
type Entitlement struct {
	ID                string            `json:"id"`
	Description       string            `json:"description,omitempty"`
	ApprovalRequired  bool              `json:"approvalRequired"`
	RequiredApprovals int               `json:"requiredApprovals,omitempty"`
	MinDuration       string            `json:"minDuration"`
	MaxDuration       string            `json:"maxDuration"`
	Privileges        []grant.Privilege `json:"privileges"`
	Inputs            []Input           `json:"inputs,omitempty"`
}

// Input is a value the policy's constraints ask the requester for.
type Input struct {
	Name        string `json:"name"`
	DisplayName string `json:"displayName,omitempty"`
	Type        string `json:"type"`
	Min         int64  `json:"min,omitempty"`
	Max         int64  `json:"max,omitempty"`
}

// Entitlements lists what the caller may request now.
func (s *Service) Entitlements(ctx context.Context, caller string) ([]Entitlement, error) {
	pol, err := s.policy(ctx)
	if err != nil {
		return nil, err
	}
	subj, err := s.subject(ctx, caller)
	if err != nil {
		return nil, err
	}
	out := []Entitlement{}
	for _, a := range pol.Evaluate(subj) {
		if !a.Join {
			continue
		}
		exp, ok := a.Group.Expiry()
		if !ok {
			continue // cannot be joined without an expiry (policy.Join refuses it)
		}
		e := Entitlement{
			ID: a.Group.ID(), Description: a.Group.Description, ApprovalRequired: !a.SelfApprove,
			MinDuration: isoduration.Format(exp.Min), MaxDuration: isoduration.Format(exp.Max),
			Privileges: privileges(a.Group),
		}
		if e.ApprovalRequired {
			e.RequiredApprovals = a.Group.Approvals().Required
		}
		for _, v := range a.Group.Variables() {
			e.Inputs = append(e.Inputs, Input{Name: v.Name, DisplayName: v.DisplayName, Type: string(v.Type), Min: v.Min, Max: v.Max})
		}
		out = append(out, e)
	}
	return out, nil
}

func privileges(g *policy.Group) []grant.Privilege {
	out := make([]grant.Privilege, len(g.Privileges))
	for i, p := range g.Privileges {
		out[i] = grant.Privilege{Resource: p.Resource, Role: p.Role, Condition: p.Condition}
	}
	return out
}

// RequestInput is the body of POST /v1/grants.
type RequestInput struct {
	Entitlement       string         `json:"entitlement"`
	RequestedDuration string         `json:"requestedDuration"`
	Justification     string         `json:"justification"`
	Inputs            map[string]any `json:"inputs"`
}

// Request creates a grant for the caller, if the policy in force lets them
// request it with these inputs. Nothing is written or emitted on refusal.
func (s *Service) Request(ctx context.Context, caller string, in RequestInput) (*grant.Grant, error) {
	return s.request(ctx, caller, in, "")
}

// RequestOnBehalf creates a grant for user, requested by another system
// (serviceAccount, the verified signer of the request's envelope). The
// policy must trust that system for the entitlement (REQUEST_ON_BEHALF),
// and the user must be allowed to request it as if they asked themselves.
func (s *Service) RequestOnBehalf(ctx context.Context, serviceAccount, user string, in RequestInput) (*grant.Grant, error) {
	pol, err := s.policy(ctx)
	if err != nil {
		return nil, err
	}
	if !pol.MayRequestOnBehalf(serviceAccount, in.Entitlement) {
		return nil, forbidden("entitlement", "%s may not request %q on behalf of users (REQUEST_ON_BEHALF)", serviceAccount, in.Entitlement)
	}
	return s.request(ctx, user, in, serviceAccount)
}

func (s *Service) request(ctx context.Context, caller string, in RequestInput, via string) (*grant.Grant, error) {
	if in.Entitlement == "" {
		return nil, invalid("entitlement", "is required")
	}
	just := strings.TrimSpace(in.Justification)
	switch {
	case just == "":
		return nil, invalid("justification", "is required: say why you need this access")
	case utf8.RuneCountInString(just) > MaxJustification:
		return nil, invalid("justification", "must be at most %d characters", MaxJustification)
	}
	var dur time.Duration
	if in.RequestedDuration != "" {
		var err error
		if dur, err = isoduration.Parse(in.RequestedDuration); err != nil || dur <= 0 {
			return nil, invalid("requestedDuration", "must be a positive ISO 8601 duration such as PT1H: %v", err)
		}
	}
	pol, err := s.policy(ctx)
	if err != nil {
		return nil, err
	}
	subj, err := s.subject(ctx, caller)
	if err != nil {
		return nil, err
	}
	acc, ok := pol.Check(subj, in.Entitlement)
	if !ok || !acc.View {
		// Unknown and invisible look the same: no probing for names.
		return nil, notFound("entitlement", "%q does not exist or is not visible to you", in.Entitlement)
	}
	if !acc.Join {
		return nil, forbidden("entitlement", "you may not request %s: %s", acc.Group.ID(), strings.Join(acc.Refusals[:1], ""))
	}
	if exp, ok := acc.Group.Expiry(); ok {
		if dur, err = exp.Check(dur); err != nil {
			return nil, invalid("requestedDuration", "%v", err)
		}
	}
	inputs := map[string]any{}
	for k, v := range in.Inputs {
		inputs[k] = v
	}
	for _, v := range acc.Group.Variables() {
		if _, given := inputs[v.Name]; !given && v.Name == "justification" {
			inputs[v.Name] = just // JIT Groups models the justification as an input
		}
	}
	// Counting active grants costs a ledger query: only for a concurrency limit.
	var active []*grant.Grant
	if acc.Group.MaxActive() > 0 {
		if active, err = s.cfg.Ledger.List(ctx, grant.Query{Entitlement: acc.Group.ID(), States: []grant.State{grant.Activating, grant.Active}}); err != nil {
			return nil, fmt.Errorf("failed to count active grants: %w", err)
		}
	}
	d, err := pol.Join(policy.Request{Subject: subj, Entitlement: acc.Group.ID(), Duration: dur, Inputs: inputs, Active: len(active)})
	if err != nil {
		var denied *policy.Denied
		if errors.As(err, &denied) {
			return nil, invalid("inputs", "%s", strings.Join(denied.Reasons, "; "))
		}
		return nil, err
	}
	now := s.now()
	g := &grant.Grant{
		ID: grant.NewID(), Entitlement: d.Group.ID(), Requester: subj.Email, Justification: just,
		Inputs: d.Inputs, RequestedDuration: d.Duration, Privileges: privileges(d.Group),
		ApprovalRequired: !d.SelfApproved, CreateTime: now,
	}
	state, msg := grant.Activating, "self-approved"
	if g.ApprovalRequired {
		state = grant.ApprovalAwaited
		g.RequiredApprovals = d.Approvals.Required
		g.ApprovalDeadline = now.Add(d.Approvals.Window)
		for _, a := range d.Approvers {
			g.Approvers = append(g.Approvers, a.String())
		}
		msg = fmt.Sprintf("awaiting %d approval(s) from %s", d.Approvals.Required, strings.Join(g.Approvers, ", "))
	}
	if via != "" {
		msg += "; requested by " + via + " on behalf of " + subj.Email
	}
	if _, err := g.Transition(state, events.Requested, now, subj.Email, msg); err != nil {
		return nil, err
	}
	if err := s.cfg.Ledger.Create(ctx, g); err != nil {
		return nil, fmt.Errorf("failed to store the grant: %w", err)
	}
	s.publishAfter(ctx, g)
	return s.cfg.Ledger.Get(ctx, g.ID)
}

// Get returns a grant the caller may see: their own, one they may
// approve, or any for holders of RECONCILE.
func (s *Service) Get(ctx context.Context, caller, id string) (*grant.Grant, error) {
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
	if ok, err := s.maySee(ctx, caller, g); err != nil {
		return nil, err
	} else if !ok {
		return nil, notFound("id", "no grant %q", id)
	}
	return g, nil
}

func (s *Service) maySee(ctx context.Context, caller string, g *grant.Grant) (bool, error) {
	if strings.EqualFold(caller, g.Requester) {
		return true, nil
	}
	subj, err := s.subject(ctx, caller)
	if err != nil {
		return false, err
	}
	for _, a := range g.Approvers {
		for _, p := range subj.Principals {
			if p.String() == a {
				return true, nil
			}
		}
	}
	pol, err := s.policy(ctx)
	if err != nil {
		return false, err
	}
	acc, ok := pol.Check(subj, g.Entitlement)
	return ok && (acc.ApproveOthers || s.mayReconcile(pol, subj)), nil
}

func (s *Service) mayReconcile(pol *policy.Policy, subj policy.Subject) bool {
	var allow, deny policy.Permission
	for _, ace := range pol.Environment.ACL {
		if subj.Has(ace.Principal) {
			if ace.Deny {
				deny |= ace.Mask
			} else {
				allow |= ace.Mask
			}
		}
	}
	return allow&policy.Reconcile == policy.Reconcile && deny&policy.Reconcile == 0
}

// List returns the caller's own grants, or (approvable) those awaiting
// an approval the caller may give now.
func (s *Service) List(ctx context.Context, caller string, approvable bool) ([]*grant.Grant, error) {
	if !approvable {
		return s.cfg.Ledger.List(ctx, grant.Query{Requester: strings.ToLower(caller), Limit: 200})
	}
	subj, err := s.subject(ctx, caller)
	if err != nil {
		return nil, err
	}
	principals := subj.PrincipalStrings()
	gs, err := s.cfg.Ledger.List(ctx, grant.Query{States: []grant.State{grant.ApprovalAwaited}, Approvers: principals, Limit: 200})
	if err != nil {
		return nil, err
	}
	pol, err := s.policy(ctx)
	if err != nil {
		return nil, err
	}
	out := []*grant.Grant{}
	for _, g := range gs {
		if strings.EqualFold(g.Requester, subj.Email) || g.DecidedBy(subj.Email) {
			continue
		}
		if acc, ok := pol.Check(subj, g.Entitlement); ok && acc.ApproveOthers {
			out = append(out, g)
		}
	}
	return out, nil
}

// Withdraw ends the caller's own request or grant now. A request still
// waiting for approval is withdrawn at once; an active grant moves to
// WITHDRAWING and the revoke function removes the access (the command goes
// straight to it, and the workflow stops waiting for the end).
func (s *Service) Withdraw(ctx context.Context, caller, id string) (*grant.Grant, error) {
	g, err := s.Get(ctx, caller, id)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(caller, g.Requester) {
		return nil, forbidden("id", "only the requester may withdraw %s", id)
	}
	now := s.now()
	g, err = s.cfg.Ledger.Update(ctx, id, func(cur *grant.Grant) error {
		switch cur.State {
		case grant.ApprovalAwaited, grant.Scheduled:
			_, err := cur.Transition(grant.Withdrawn, events.WithdrawnType, now, caller, "withdrawn by the requester before approval")
			return err
		case grant.Activating, grant.Active:
			_, err := cur.Transition(grant.Withdrawing, events.WithdrawingType, now, caller, "withdrawn by the requester")
			return err
		default:
			return conflict("%s is %s and cannot be withdrawn", id, cur.State)
		}
	})
	if err != nil {
		return nil, err
	}
	s.publishAfter(ctx, g)
	switch g.State {
	case grant.Withdrawn:
		if err := s.callback(ctx, g.ApprovalCallback, map[string]any{"state": g.State}); err != nil {
			s.log.WarnContext(ctx, "workflow not resumed after withdrawal", "grant_id", id, "error", err)
		}
	case grant.Withdrawing:
		if err := s.requestRevoke(ctx, g, "withdraw"); err != nil {
			return nil, err
		}
		if err := s.callback(ctx, g.EndCallback, map[string]any{"reason": "withdraw"}); err != nil {
			s.log.WarnContext(ctx, "workflow not resumed after withdrawal", "grant_id", id, "error", err)
		}
	}
	return g, nil
}

// requestRevoke sends the revoke command straight to the revoke function.
func (s *Service) requestRevoke(ctx context.Context, g *grant.Grant, reason string) error {
	if s.cfg.Events == nil {
		return nil
	}
	e, err := events.New(events.RevokeRequested, fmt.Sprintf("%s-%s", g.ID, reason), s.now(), events.Data{
		GrantID: g.ID, Entitlement: g.Entitlement, Requester: g.Requester, State: g.State,
		CallbackURL: g.EndCallback, Reason: reason,
	})
	if err != nil {
		return fmt.Errorf("failed to build the revoke command: %w", err)
	}
	if _, err := s.cfg.Events.Publish(ctx, e); err != nil {
		return fmt.Errorf("failed to publish the revoke command: %w", err)
	}
	return nil
}

// RevokeByAdmin ends someone's active grant now: an administrator holding
// RECONCILE on the environment of the policy in force may, nobody else.
// The grant moves to REVOKING; the revoke function removes the access and
// records REVOKED.
func (s *Service) RevokeByAdmin(ctx context.Context, caller, id, reason string) (*grant.Grant, error) {
	g, err := s.Get(ctx, caller, id)
	if err != nil {
		return nil, err
	}
	subj, err := s.subject(ctx, caller)
	if err != nil {
		return nil, err
	}
	pol, err := s.policy(ctx)
	if err != nil {
		return nil, err
	}
	if !s.mayReconcile(pol, subj) {
		return nil, forbidden("id", "revoking %s needs the RECONCILE permission on the environment", id)
	}
	msg := "revoked by an administrator"
	if reason = strings.TrimSpace(reason); reason != "" {
		msg += ": " + reason
	}
	g, err = s.cfg.Ledger.Update(ctx, id, func(cur *grant.Grant) error {
		if cur.State != grant.Active {
			return conflict("%s is %s; only an ACTIVE grant can be revoked (withdraw or deny a request)", id, cur.State)
		}
		_, err := cur.Transition(grant.Revoking, events.RevokingType, s.now(), subj.Email, msg)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.publishAfter(ctx, g)
	if err := s.requestRevoke(ctx, g, ReasonRevoke); err != nil {
		return nil, err
	}
	if err := s.callback(ctx, g.EndCallback, map[string]any{"reason": ReasonRevoke}); err != nil {
		s.log.WarnContext(ctx, "workflow not resumed after revocation", "grant_id", id, "error", err)
	}
	return g, nil
}
