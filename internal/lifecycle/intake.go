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
	"github.com/jitpipeline/jit/internal/isoduration"
	"github.com/jitpipeline/jit/internal/policy"
	"github.com/jitpipeline/jit/internal/usertext"
)

// MaxJustification bounds the justification's length (characters): room
// for an incident summary and a pasted link or log line.
const MaxJustification = 4096

// slotStates are the states that take a place under a concurrency limit
// (grant.State.HoldsSlot).
var slotStates = []grant.State{grant.Activating, grant.Active, grant.Withdrawing, grant.Revoking}

// limitReached is the refusal of a request or approval that would exceed
// the entitlement's concurrency limit.
func limitReached(entitlement string, limit int) *Error {
	return refusal(ErrConflict, "entitlement", "%s allows at most %d active grant(s) at once, and that many are active; ask again when one has ended", entitlement, limit)
}

// IntakeConfig is what the intake function's service needs. It has no IAM
// writer: withdrawals and revocations are commands to the revoke function,
// on Revocations.
type IntakeConfig struct {
	Common
	Callers
	Resume
	// Revocations carries revoke.requested commands to the revoke function.
	Revocations Publisher
}

// Validate reports every missing dependency.
func (c IntakeConfig) Validate() error {
	return errors.Join(slices.Concat(c.Common.problems(), c.Callers.problems(), c.Resume.problems(),
		required(need{"Revocations", c.Revocations != nil}))...)
}

// IntakeService is the intake function: requests, their reading and
// withdrawal, and administrators' revocations.
type IntakeService struct {
	*core
	revocations Publisher
}

// NewIntake builds the intake service; a missing dependency is an error
// naming it.
func NewIntake(cfg IntakeConfig) (*IntakeService, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("lifecycle: intake service: %w", err)
	}
	return &IntakeService{core: newCore(cfg.Common, cfg.Callers, cfg.Resume, nil), revocations: cfg.Revocations}, nil
}

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
func (s *IntakeService) Entitlements(ctx context.Context, caller Caller) ([]Entitlement, error) {
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
func (s *IntakeService) Request(ctx context.Context, caller Caller, in RequestInput) (*grant.Grant, error) {
	return s.request(ctx, caller, in, "", "")
}

// RequestOnBehalf creates a grant for user, requested by another system
// (serviceAccount, the verified signer of the request's envelope; key the
// envelope's idempotency key). The policy must trust that system for the
// entitlement (REQUEST_ON_BEHALF), and the user must be allowed to request
// it as if they asked themselves. The key is consumed in the same ledger
// write that stores the grant, so a transient failure leaves the request
// to its redelivery; a key seen before is refused with an error wrapping
// grant.ErrDuplicateRequest. A request the policy refuses consumes its key
// too, so the same envelope cannot succeed later.
func (s *IntakeService) RequestOnBehalf(ctx context.Context, serviceAccount string, user Caller, in RequestInput, key string) (*grant.Grant, error) {
	if key == "" {
		return nil, errors.New("a request on behalf needs its envelope's key")
	}
	pol, err := s.policy(ctx)
	if err != nil {
		return nil, err
	}
	var g *grant.Grant
	if !pol.MayRequestOnBehalf(serviceAccount, in.Entitlement) {
		err = forbidden("entitlement", "%s may not request %q on behalf of users (REQUEST_ON_BEHALF)", serviceAccount, in.Entitlement)
	} else {
		g, err = s.request(ctx, user, in, serviceAccount, key)
	}
	var refused *Error
	if errors.As(err, &refused) {
		if first, onceErr := s.ledger.Once(ctx, key, RequestKeyTTL); onceErr != nil {
			return nil, fmt.Errorf("failed to consume the refused request's key: %w", onceErr)
		} else if !first {
			return nil, fmt.Errorf("%w: %s", grant.ErrDuplicateRequest, key)
		}
	}
	return g, err
}

// RequestKeyTTL is how long a refused request's key is remembered: as
// long as the ledger remembers an accepted one (ledger.RequestKeyTTL, the
// longest Pub/Sub can redeliver a message).
const RequestKeyTTL = 31 * 24 * time.Hour

// justification is the one justification of a request: the field, or the
// policy input of that name (JIT Groups models it as an input), which must
// then say the same — the value the constraints check is the value the
// grant records.
func justification(in RequestInput) (string, error) {
	just := in.Justification
	if v, ok := in.Inputs["justification"]; ok {
		s, isString := v.(string)
		switch {
		case !isString:
			return "", invalid("inputs.justification", "must be a string")
		case just == "":
			just = s
		case strings.TrimSpace(s) != strings.TrimSpace(just):
			return "", invalid("inputs.justification", "must be the same as justification, or left out")
		}
	}
	if just == "" {
		return "", invalid("justification", "is required: say why you need this access")
	}
	clean, err := usertext.Clean(just, MaxJustification)
	if err != nil {
		return "", invalid("justification", "%v: say why you need this access", err)
	}
	return clean, nil
}

func (s *IntakeService) request(ctx context.Context, caller Caller, in RequestInput, via, key string) (*grant.Grant, error) {
	if in.Entitlement == "" {
		return nil, invalid("entitlement", "is required")
	}
	just, err := justification(in)
	if err != nil {
		return nil, err
	}
	var dur time.Duration
	if in.RequestedDuration != "" {
		var err error
		if dur, err = isoduration.Parse(in.RequestedDuration); err != nil {
			return nil, invalid("requestedDuration", "must be a positive ISO 8601 duration such as PT1H: %v", err)
		}
		if dur <= 0 {
			return nil, invalid("requestedDuration", "must be a positive ISO 8601 duration such as PT1H, got %s", in.RequestedDuration)
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
		if v.Name == "justification" {
			inputs[v.Name] = just
		}
	}
	d, err := pol.Join(policy.Request{Subject: subj, Entitlement: acc.Group.ID(), Duration: dur, Inputs: inputs})
	if err != nil {
		var denied *policy.Denied
		if errors.As(err, &denied) {
			return nil, invalid("inputs", "%s", strings.Join(denied.Reasons, "; "))
		}
		return nil, err
	}
	// Early word for a full entitlement; the ledger enforces the limit
	// atomically when a grant takes a slot (here, or on approval).
	limit := d.Group.MaxActive()
	if limit > 0 {
		active, err := s.ledger.List(ctx, grant.Query{Entitlement: d.Group.ID(), States: slotStates})
		if err != nil {
			return nil, fmt.Errorf("failed to count active grants: %w", err)
		}
		if len(active) >= limit {
			return nil, limitReached(d.Group.ID(), limit)
		}
	}
	now := s.now()
	g := &grant.Grant{
		ID: grant.NewID(), Entitlement: d.Group.ID(), Requester: subj.Email, Justification: just,
		Inputs: d.Inputs, RequestedDuration: d.Duration, Privileges: privileges(d.Group),
		ApprovalRequired: !d.SelfApproved, CreateTime: now,
		RequesterHostedDomain: s.hostedDomain(ctx, caller), RequestKey: key,
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
	} else {
		g.ConcurrencyLimit = limit
	}
	if via != "" {
		msg += "; requested by " + via + " on behalf of " + subj.Email
	}
	if _, err := g.Transition(state, events.TypeRequested, now, subj.Email, msg); err != nil {
		return nil, err
	}
	if err := s.ledger.Create(ctx, g); errors.Is(err, grant.ErrLimit) {
		return nil, limitReached(d.Group.ID(), limit)
	} else if err != nil {
		return nil, fmt.Errorf("failed to store the grant: %w", err)
	}
	s.publishAfter(ctx, g)
	return s.ledger.Get(ctx, g.ID)
}

// Get returns a grant the caller may see: their own, one they may
// approve, or any for holders of RECONCILE.
func (s *IntakeService) Get(ctx context.Context, caller Caller, id string) (*grant.Grant, error) {
	return s.get(ctx, caller, id)
}

// Get returns a grant the caller may see, as IntakeService.Get: the
// approval page shows it to the approver it was sent to.
func (s *ApprovalService) Get(ctx context.Context, caller Caller, id string) (*grant.Grant, error) {
	return s.get(ctx, caller, id)
}

func (s *core) get(ctx context.Context, caller Caller, id string) (*grant.Grant, error) {
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
	if ok, err := s.maySee(ctx, caller, g); err != nil {
		return nil, err
	} else if !ok {
		return nil, notFound("id", "no grant %q", id)
	}
	return g, nil
}

func (s *core) maySee(ctx context.Context, caller Caller, g *grant.Grant) (bool, error) {
	if sameEmail(caller.Email, g.Requester) {
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

func (s *core) mayReconcile(pol *policy.Policy, subj policy.Subject) bool {
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
func (s *IntakeService) List(ctx context.Context, caller Caller, approvable bool) ([]*grant.Grant, error) {
	if !approvable {
		return s.ledger.List(ctx, grant.Query{Requester: caller.Email, Limit: 200})
	}
	subj, err := s.subject(ctx, caller)
	if err != nil {
		return nil, err
	}
	principals := subj.PrincipalStrings()
	gs, err := s.ledger.List(ctx, grant.Query{States: []grant.State{grant.ApprovalAwaited}, Approvers: principals, Limit: 200})
	if err != nil {
		return nil, err
	}
	pol, err := s.policy(ctx)
	if err != nil {
		return nil, err
	}
	out := []*grant.Grant{}
	for _, g := range gs {
		if sameEmail(g.Requester, subj.Email) || g.DecidedBy(subj.Email) {
			continue
		}
		if acc, ok := pol.Check(subj, g.Entitlement); ok && acc.ApproveOthers {
			out = append(out, g)
		}
	}
	return out, nil
}

// Withdraw ends the caller's own request or grant now. A request still
// waiting for approval is withdrawn at once; a grant that may hold access
// — activating, active, or a failed activation whose removal is not
// verified — moves to WITHDRAWING and the revoke function removes the
// access (the command goes straight to it, and the workflow stops waiting
// for the end).
func (s *IntakeService) Withdraw(ctx context.Context, caller Caller, id string) (*grant.Grant, error) {
	g, err := s.Get(ctx, caller, id)
	if err != nil {
		return nil, err
	}
	if !sameEmail(caller.Email, g.Requester) {
		return nil, forbidden("id", "only the requester may withdraw %s", id)
	}
	now := s.now()
	g, err = s.ledger.Update(ctx, id, func(cur *grant.Grant) error {
		switch {
		case cur.State == grant.ApprovalAwaited, cur.State == grant.Scheduled:
			_, err := cur.Transition(grant.Withdrawn, events.TypeWithdrawn, now, caller.Email, "withdrawn by the requester before approval")
			return err
		case cur.State == grant.Withdrawing, cur.State == grant.Revoking:
			return grant.ErrNoChange // being removed: the revoke command goes out again
		case cur.MayHoldAccess() && grant.CanMove(cur.State, grant.Withdrawing):
			_, err := cur.Transition(grant.Withdrawing, events.TypeWithdrawing, now, caller.Email, "withdrawn by the requester")
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
		if err := s.callback(ctx, g.Execution, g.ApprovalCallback, map[string]any{"state": g.State}); err != nil {
			s.log.WarnContext(ctx, "workflow not resumed after withdrawal", "grant_id", id, "error", err)
		}
	case grant.Withdrawing, grant.Revoking:
		reason := removalReason(g.State)
		if err := s.requestRevoke(ctx, g, reason); err != nil {
			return nil, err
		}
		if err := s.callback(ctx, g.Execution, g.EndCallback, map[string]any{"reason": reason}); err != nil {
			s.log.WarnContext(ctx, "workflow not resumed after withdrawal", "grant_id", id, "error", err)
		}
	}
	return g, nil
}

// requestRevoke sends the revoke command straight to the revoke function,
// on the revocations topic.
func (s *IntakeService) requestRevoke(ctx context.Context, g *grant.Grant, reason string) error {
	e, err := events.New(events.TypeRevokeRequested, fmt.Sprintf("%s-%s", g.ID, reason), s.now(), events.Data{
		GrantID: g.ID, Entitlement: g.Entitlement, Requester: g.Requester, State: g.State, Reason: reason,
	})
	if err != nil {
		return fmt.Errorf("failed to build the revoke command: %w", err)
	}
	if _, err := s.revocations.Publish(ctx, e); err != nil {
		return fmt.Errorf("failed to publish the revoke command: %w", err)
	}
	return nil
}

// RevokeByAdmin ends someone's access now: an administrator holding
// RECONCILE on the environment of the policy in force may, nobody else.
// Every grant that may hold access can be revoked — activating, active, or
// a failed activation whose removal is not verified. The grant moves to
// REVOKING; the revoke function removes the access and records REVOKED.
func (s *IntakeService) RevokeByAdmin(ctx context.Context, caller Caller, id, reason string) (*grant.Grant, error) {
	reason, err := reasonText(reason, false)
	if err != nil {
		return nil, err
	}
	// Only for its check that the caller may see the grant (404 otherwise).
	if _, err := s.Get(ctx, caller, id); err != nil {
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
	if reason != "" {
		msg += ": " + strconv.Quote(reason)
	}
	g, err := s.ledger.Update(ctx, id, func(cur *grant.Grant) error {
		switch {
		case cur.State == grant.Revoking, cur.State == grant.Withdrawing:
			return grant.ErrNoChange // being removed: the revoke command goes out again
		case cur.MayHoldAccess() && grant.CanMove(cur.State, grant.Revoking):
			_, err := cur.Transition(grant.Revoking, events.TypeRevoking, s.now(), subj.Email, msg)
			return err
		default:
			return conflict("%s is %s and holds no access to revoke (withdraw or deny a request)", id, cur.State)
		}
	})
	if err != nil {
		return nil, err
	}
	s.publishAfter(ctx, g)
	if err := s.requestRevoke(ctx, g, removalReason(g.State)); err != nil {
		return nil, err
	}
	if err := s.callback(ctx, g.Execution, g.EndCallback, map[string]any{"reason": removalReason(g.State)}); err != nil {
		s.log.WarnContext(ctx, "workflow not resumed after revocation", "grant_id", id, "error", err)
	}
	return g, nil
}

// removalReason is the revoke command's reason for a grant whose access is
// being removed: the one its state records, so that a withdrawal asked for
// again during an administrator's revocation (or the other way round)
// drives the removal already under way instead of refusing.
func removalReason(s grant.State) string {
	if s == grant.Withdrawing {
		return ReasonWithdraw
	}
	return ReasonRevoke
}

// sameEmail compares two canonical addresses by ASCII case only.
func sameEmail(a, b string) bool { return emailaddr.Equal(a, b) }
