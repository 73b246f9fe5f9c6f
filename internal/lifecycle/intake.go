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
	"github.com/jitpipeline/jit/internal/lazyregexp"
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
	// Classic is set for a role of JIT Access's eligible IAM bindings.
	Classic *Classic `json:"classic,omitempty"`
}

// Classic describes an entitlement that is a JIT Access eligible role
// binding (docs/migrate-from-jit-access.md): how it is activated, and the
// limits of the request.
type Classic struct {
	// ActivationType is JIT (self-approved, with a justification) or MPA
	// (a chosen peer approves), as JIT Access names them.
	ActivationType    string `json:"activationType"`
	Project           string `json:"project"`
	Role              string `json:"role"`
	ResourceCondition string `json:"resourceCondition,omitempty"`
	// MaxRoles (JIT) is how many roles of the project one request may
	// activate; MinReviewers and MaxReviewers (MPA) how many peers it
	// must name.
	MaxRoles     int `json:"maxRoles,omitempty"`
	MinReviewers int `json:"minReviewers,omitempty"`
	MaxReviewers int `json:"maxReviewers,omitempty"`
}

// Input is a value the policy's constraints ask the requester for.
type Input struct {
	Name        string `json:"name"`
	DisplayName string `json:"displayName,omitempty"`
	Type        string `json:"type"`
	Min         int64  `json:"min,omitempty"`
	Max         int64  `json:"max,omitempty"`
}

// ProjectSource is a PolicySource that can read one project's
// entitlements on their own, and say whether its full listing is
// complete (policy/classic.Source: JIT Access's eligible bindings).
type ProjectSource interface {
	ForProject(ctx context.Context, project string) (*policy.Policy, string, error)
	Complete() bool
}

// Listing is the answer of GET /v1/entitlements.
type Listing struct {
	Entitlements []Entitlement `json:"entitlements"`
	// Incomplete is set while JIT Access's eligible bindings are still
	// being read (a cold catalog of a large scope): ask again shortly, or
	// list one project, which is read at once.
	Incomplete bool `json:"incomplete,omitempty"`
}

// projectRE is a project ID.
var projectRE = lazyregexp.New(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)

// Entitlements lists what the caller may request now; with project set,
// only those that grant on that project (projects/ID), whose eligible
// IAM bindings are then read now rather than from the cache.
func (s *IntakeService) Entitlements(ctx context.Context, caller Caller, project string) (*Listing, error) {
	if project != "" && !projectRE.MatchString(project) {
		return nil, invalid("project", "must be a project ID, got %q", project)
	}
	listing := &Listing{Entitlements: []Entitlement{}}
	var pol *policy.Policy
	var err error
	ps, byProject := s.policies.(ProjectSource)
	switch {
	case byProject && project != "":
		pol, _, err = ps.ForProject(ctx, project)
	default:
		pol, err = s.policy(ctx)
		listing.Incomplete = byProject && !ps.Complete()
	}
	if err != nil {
		return nil, err
	}
	subj, err := s.subject(ctx, caller)
	if err != nil {
		return nil, err
	}
	for _, a := range pol.Evaluate(subj) {
		if !a.Join {
			continue
		}
		if project != "" && !slices.ContainsFunc(a.Group.Privileges, func(p policy.Privilege) bool { return p.Resource == "projects/"+project }) {
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
		if opts := a.Group.Classic(); opts != nil && len(a.Group.Privileges) == 1 {
			p := a.Group.Privileges[0]
			c := &Classic{ActivationType: "JIT", Project: strings.TrimPrefix(p.Resource, "projects/"), Role: p.Role, ResourceCondition: p.Condition, MaxRoles: opts.MaxRoles}
			if e.ApprovalRequired {
				c.ActivationType, c.MaxRoles, c.MinReviewers, c.MaxReviewers = "MPA", 0, opts.MinReviewers, opts.MaxReviewers
			}
			e.Classic = c
		}
		listing.Entitlements = append(listing.Entitlements, e)
	}
	return listing, nil
}

// Reviewers lists the peers the caller may choose to review a request for
// a peer-approved role of JIT Access's eligible bindings: the users, groups
// expanded, who may approve it under the policy in force, the caller left
// out. Only someone who may request the role may list them, as in JIT
// Access (no enumeration of who holds what).
func (s *IntakeService) Reviewers(ctx context.Context, caller Caller, entitlement string) ([]string, error) {
	pol, err := s.decisionPolicy(ctx, entitlement)
	if err != nil {
		return nil, err
	}
	subj, err := s.subject(ctx, caller)
	if err != nil {
		return nil, err
	}
	acc, ok := pol.Check(subj, entitlement)
	if !ok || !acc.View {
		return nil, notFound("id", "%q does not exist or is not visible to you", entitlement)
	}
	if !acc.Join {
		return nil, forbidden("id", "you may not request %s, so you may not list its reviewers", acc.Group.ID())
	}
	if acc.Group.Classic() == nil || acc.SelfApprove {
		return nil, invalid("id", "%s is not a peer-approved role of an eligible IAM binding: it has no reviewers to choose", acc.Group.ID())
	}
	candidates, err := s.people(ctx, acc.Group.Approvers(subj.Email), subj.Email)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, key := range candidates {
		peer, err := s.subject(ctx, Caller{Email: key})
		if err != nil {
			continue // not an address the pipeline accepts
		}
		if a, ok := pol.Check(peer, acc.Group.ID()); ok && a.ApproveOthers {
			out = append(out, key)
		}
	}
	slices.Sort(out)
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
	// Reviewers are the peers asked to approve a peer-approved role of
	// JIT Access's eligible bindings (multi-party approval): between
	// ACTIVATION_REQUEST_MIN_REVIEWERS and …_MAX_REVIEWERS users who are
	// eligible to approve it themselves. Only for such roles.
	Reviewers []string `json:"reviewers"`
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
	p, err := s.prepare(ctx, caller, in, via, key, false)
	if err != nil {
		return nil, err
	}
	return s.store(ctx, p)
}

// pending is a request the policy accepted, not yet stored.
type pending struct {
	g     *grant.Grant
	group *policy.Group
	limit int
}

// prepare takes every decision on a request and builds its grant, with
// the timeline entry of its first state; nothing is written. In a batch
// (RequestMany) a role that needs approval is refused.
func (s *IntakeService) prepare(ctx context.Context, caller Caller, in RequestInput, via, key string, batch bool) (*pending, error) {
	return s.prepareWith(ctx, nil, caller, in, via, key, batch)
}

// prepareWith is prepare on pol, or (nil) on the policy read fresh for
// the entitlement.
func (s *IntakeService) prepareWith(ctx context.Context, pol *policy.Policy, caller Caller, in RequestInput, via, key string, batch bool) (*pending, error) {
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
	if pol == nil {
		if pol, err = s.decisionPolicy(ctx, in.Entitlement); err != nil {
			return nil, err
		}
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
	var reviewers []string
	switch classic := d.Group.Classic(); {
	case len(in.Reviewers) > 0 && (classic == nil || d.SelfApproved):
		return nil, invalid("reviewers", "are chosen only for a peer-approved role of an eligible IAM binding (JIT Access multi-party approval); %s needs none", d.Group.ID())
	case batch && !d.SelfApproved:
		return nil, invalid("entitlement", "%s needs a peer's approval: request it on its own, with reviewers", d.Group.ID())
	case classic != nil && !d.SelfApproved:
		if reviewers, err = s.reviewers(ctx, pol, subj, d, in.Reviewers, classic); err != nil {
			return nil, err
		}
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
		if reviewers != nil {
			g.Reviewers, g.Approvers = reviewers, nil
			for _, r := range reviewers {
				g.Approvers = append(g.Approvers, "user:"+r)
			}
			msg = fmt.Sprintf("awaiting the approval of one of the reviewers chosen: %s", strings.Join(reviewers, ", "))
		}
	} else {
		g.ConcurrencyLimit = limit
	}
	if via != "" {
		msg += "; requested by " + via + " on behalf of " + subj.Email
	}
	if _, err := g.Transition(state, events.TypeRequested, now, subj.Email, msg); err != nil {
		return nil, err
	}
	return &pending{g: g, group: d.Group, limit: limit}, nil
}

// store writes a prepared grant and publishes its first event.
func (s *IntakeService) store(ctx context.Context, p *pending) (*grant.Grant, error) {
	if err := s.ledger.Create(ctx, p.g); errors.Is(err, grant.ErrLimit) {
		return nil, limitReached(p.group.ID(), p.limit)
	} else if err != nil {
		return nil, fmt.Errorf("failed to store the grant: %w", err)
	}
	s.publishAfter(ctx, p.g)
	return s.ledger.Get(ctx, p.g.ID)
}

// reviewers checks the peers a requester chose for a peer-approved role of
// JIT Access's eligible bindings (docs/jit-access.md §1.8): between
// MinReviewers and MaxReviewers distinct users, never the requester, each
// of whom could approve this request now under the policy in force —
// which, for these roles, means holding the same peer-approved binding.
func (s *IntakeService) reviewers(ctx context.Context, pol *policy.Policy, requester policy.Subject, d *policy.Decision, chosen []string, opts *policy.Classic) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for i, r := range chosen {
		field := fmt.Sprintf("reviewers[%d]", i)
		addr, err := emailaddr.Canonical(strings.TrimPrefix(r, "user:"))
		if err != nil {
			return nil, invalid(field, "%v", err)
		}
		if sameEmail(addr, requester.Email) {
			return nil, invalid(field, "you cannot review your own request: choose a peer")
		}
		if seen[emailaddr.Key(addr)] {
			continue
		}
		seen[emailaddr.Key(addr)] = true
		peer, err := s.subject(ctx, Caller{Email: addr})
		if err != nil {
			return nil, err
		}
		if _, err := pol.Approve(policy.Approval{Approver: peer, Requester: requester, Entitlement: d.Group.ID(), Duration: d.Duration, Inputs: d.Inputs}); err != nil {
			return nil, invalid(field, "%s is not a peer for %s: reviewers must be eligible for the same role with approval (multiPartyApprovalConstraint)", addr, d.Group.ID())
		}
		out = append(out, emailaddr.Key(addr))
	}
	if len(out) < opts.MinReviewers || len(out) > opts.MaxReviewers {
		return nil, invalid("reviewers", "choose between %d and %d peers to review the request (ACTIVATION_REQUEST_MIN_REVIEWERS, ACTIVATION_REQUEST_MAX_REVIEWERS), not %d", opts.MinReviewers, opts.MaxReviewers, len(out))
	}
	return out, nil
}

// BatchInput is the body of POST /v1/grants:batchCreate: several
// self-approved roles of one project's eligible IAM bindings activated
// with one justification and one duration, as JIT Access's
// self-activation does (docs/jit-access.md §1.5).
type BatchInput struct {
	Entitlements      []string `json:"entitlements"`
	RequestedDuration string   `json:"requestedDuration"`
	Justification     string   `json:"justification"`
}

// RequestMany activates several roles in one request: one grant per role,
// all decided before any is stored, so a refusal of one stores none. The
// roles must be self-approved roles of JIT Access's eligible bindings on
// one project, at most ACTIVATION_REQUEST_MAX_ROLES of them; duplicates
// count once. Peer-approved roles are requested one at a time, with their
// reviewers, as in JIT Access.
func (s *IntakeService) RequestMany(ctx context.Context, caller Caller, in BatchInput) ([]*grant.Grant, error) {
	var ids []string
	var index []int // of each ID in the request, for the errors' fields
	seen := map[string]bool{}
	for i, id := range in.Entitlements {
		if id == "" {
			return nil, invalid(fmt.Sprintf("entitlements[%d]", i), "is empty")
		}
		if !seen[strings.ToLower(id)] {
			seen[strings.ToLower(id)] = true
			ids, index = append(ids, id), append(index, i)
		}
	}
	if len(ids) == 0 {
		return nil, invalid("entitlements", "is required: list the roles to activate")
	}
	// One fresh read for all: the roles must be on one project, whose
	// policies (and its ancestors') the first one's decision reads.
	pol, err := s.decisionPolicy(ctx, ids[0])
	if err != nil {
		return nil, err
	}
	var ready []*pending
	var project string
	for i, id := range ids {
		field := fmt.Sprintf("entitlements[%d]", index[i])
		p, err := s.prepareWith(ctx, pol, caller, RequestInput{Entitlement: id, RequestedDuration: in.RequestedDuration, Justification: in.Justification}, "", "", true)
		var refused *Error
		if errors.As(err, &refused) && refused.Field == "entitlement" {
			refused.Field = field
		}
		if err != nil {
			return nil, err
		}
		opts := p.group.Classic()
		switch {
		case opts == nil:
			return nil, invalid(field, "%s is not a role of an eligible IAM binding: several entitlements in one request are JIT Access activations; request it on its own", p.group.ID())
		case len(ids) > opts.MaxRoles:
			return nil, invalid("entitlements", "at most %d roles can be activated in one request (ACTIVATION_REQUEST_MAX_ROLES), not %d", opts.MaxRoles, len(ids))
		case project != "" && p.group.System().Name != project:
			return nil, invalid(field, "all roles of one request must be on one project: %s is on %s, not %s", p.group.ID(), p.group.System().Name, project)
		}
		project = p.group.System().Name
		ready = append(ready, p)
	}
	out := make([]*grant.Grant, 0, len(ready))
	for _, p := range ready {
		g, err := s.store(ctx, p)
		if err != nil {
			return out, fmt.Errorf("stored %d of %d grants, then: %w", len(out), len(ready), err)
		}
		out = append(out, g)
	}
	return out, nil
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
	return (ok && acc.ApproveOthers) || pol.Reconciles(subj, g.Entitlement), nil
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
		if len(g.Reviewers) > 0 && !slices.ContainsFunc(g.Reviewers, func(r string) bool { return sameEmail(r, subj.Email) }) {
			continue
		}
		if acc, ok := pol.Check(subj, g.Entitlement); ok && acc.ApproveOthers {
			out = append(out, g)
		}
	}
	return out, nil
}

// AllQuery selects grants for an administrator. Zero fields do not filter.
type AllQuery struct {
	States      []grant.State
	Entitlement string
	Requester   string
	// Limit is at most MaxListAll (the default).
	Limit int
}

// MaxListAll bounds one administrator's listing or export.
const MaxListAll = 5000

// ListAll returns everyone's grants, newest first, to a holder of
// RECONCILE or EXPORT on the policy's environment (export: EXPORT only).
// Anyone else is refused, whatever the filters.
func (s *IntakeService) ListAll(ctx context.Context, caller Caller, q AllQuery, export bool) ([]*grant.Grant, error) {
	for i, st := range q.States {
		if !slices.Contains(grant.AllStates, st) {
			return nil, invalid(fmt.Sprintf("state[%d]", i), "%q is not a grant state", st)
		}
	}
	if q.Limit < 0 || q.Limit > MaxListAll {
		return nil, invalid("limit", "must be between 1 and %d", MaxListAll)
	}
	if q.Limit == 0 {
		q.Limit = MaxListAll
	}
	subj, err := s.subject(ctx, caller)
	if err != nil {
		return nil, err
	}
	pol, err := s.policy(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case export && !pol.Exports(subj):
		return nil, forbidden("", "exporting grants needs the EXPORT permission on the environment")
	case !export && !pol.Oversees(subj):
		return nil, forbidden("view", "listing everyone's grants needs the RECONCILE or EXPORT permission on the environment")
	}
	requester := ""
	if q.Requester != "" {
		if requester, err = emailaddr.Canonical(q.Requester); err != nil {
			return nil, invalid("requester", "%v", err)
		}
	}
	return s.ledger.List(ctx, grant.Query{States: q.States, Entitlement: strings.ToLower(q.Entitlement), Requester: requester, Limit: q.Limit})
}

// PolicyInForce returns the policy in force and its version, to a holder
// of RECONCILE or EXPORT on its environment.
func (s *IntakeService) PolicyInForce(ctx context.Context, caller Caller) (*policy.Policy, string, error) {
	subj, err := s.subject(ctx, caller)
	if err != nil {
		return nil, "", err
	}
	pol, v, err := s.policies.Current(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("failed to load the policy: %w", err)
	}
	if !pol.Oversees(subj) {
		return nil, "", forbidden("", "reading the policy in force needs the RECONCILE or EXPORT permission on the environment")
	}
	return pol, v, nil
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
	// Get checks that the caller may see the grant (404 otherwise).
	seen, err := s.Get(ctx, caller, id)
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
	if !pol.Reconciles(subj, seen.Entitlement) {
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
