// Package policy is policy as code: JIT Groups–compatible policy documents
// (environment → systems → groups, where a group is an entitlement), their
// lint, and the decisions the pipeline takes from them: what a subject may
// see, request, and approve, and whether a particular request or approval
// satisfies the constraints. Decisions are always taken against the policy
// in force at that moment, never a copy saved with the request.
//
// Beyond JIT Groups, two constraint types fit the same language (see
// README "Policy"): approvals {required, window} — N distinct approvers
// within a window — and concurrency {max} — at most N active grants of an
// entitlement at once.
package policy

import (
	"errors"
	"fmt"
	"iter"
	"sort"
	"strings"
	"time"

	"github.com/jitpipeline/jit/internal/emailaddr"
)

// Policy is a compiled policy: an environment and an index from principals
// to the places that mention them, so evaluating one subject costs what
// concerns that subject, not the size of the whole policy.
type Policy struct {
	// Environment is the primary environment: the policy document's.
	Environment *Environment
	// Source is the document the policy was parsed from (nil if built).
	Source []byte

	// envs are every environment, the primary first (Merge adds others).
	envs []*Environment

	groups      map[string]*Group
	ordered     []*Group
	byPrincipal map[Principal][]*Node
	// actors lists, per principal, the nodes where an allow entry of
	// that principal grants more than VIEW (JOIN's or APPROVE_OTHERS'
	// own bit): the only places a group the principal may act on can
	// get that right from. Evaluate starts there.
	actors map[Principal][]*Node
	// below lists the groups under each environment or system node;
	// groupOf maps a group's own node back to it.
	below   map[*Node][]*Group
	groupOf map[*Node]*Group
}

// Build indexes an environment assembled in code (the classic mode does
// this) or by Parse. Names must be unique per level.
func Build(env *Environment) (*Policy, error) {
	if env == nil {
		return nil, errors.New("no environment")
	}
	return build([]*Environment{env})
}

// Merge adds environments built elsewhere (the classic environment of
// JIT Access's eligible bindings) to a policy: the result decides on the
// entitlements of all of them, keeps primary's document as its Source and
// its environment as Environment, and leaves primary unchanged.
// Environment names must differ.
func Merge(primary *Policy, others ...*Environment) (*Policy, error) {
	envs := append([]*Environment{primary.Environment}, others...)
	p, err := build(envs)
	if err != nil {
		return nil, err
	}
	p.Source = primary.Source
	return p, nil
}

func build(envs []*Environment) (*Policy, error) {
	p := &Policy{
		Environment: envs[0],
		envs:        envs,
		groups:      map[string]*Group{},
		byPrincipal: map[Principal][]*Node{},
		actors:      map[Principal][]*Node{},
		below:       map[*Node][]*Group{},
		groupOf:     map[*Node]*Group{},
	}
	names := map[string]bool{}
	for _, env := range envs {
		if env == nil {
			return nil, errors.New("no environment")
		}
		if names[strings.ToLower(env.Name)] {
			return nil, fmt.Errorf("environment %q appears twice", env.Name)
		}
		names[strings.ToLower(env.Name)] = true
		if err := p.index(env); err != nil {
			return nil, err
		}
	}
	sort.Slice(p.ordered, func(a, b int) bool { return p.ordered[a].id < p.ordered[b].id })
	return p, nil
}

func (p *Policy) index(env *Environment) error {
	p.indexNode(&env.Node)
	systems := map[string]bool{}
	for _, s := range env.Systems {
		if systems[strings.ToLower(s.Name)] {
			return fmt.Errorf("system %q appears twice", s.Name)
		}
		systems[strings.ToLower(s.Name)] = true
		// Assigned only when different: an environment built before (the
		// document's, the classic catalog's) is shared with policies other
		// goroutines read, and Merge must not write to it.
		if s.env != env {
			s.env = env
		}
		p.indexNode(&s.Node)
		for _, g := range s.Groups {
			if g.system != s {
				g.system = s
			}
			if id := groupID(env.Name, s.Name, g.Name); g.id != id {
				g.id = id
			}
			if p.groups[g.id] != nil {
				return fmt.Errorf("group %q appears twice", g.id)
			}
			p.groups[g.id] = g
			p.groupOf[&g.Node] = g
			p.ordered = append(p.ordered, g)
			p.indexNode(&g.Node)
			p.below[&s.Node] = append(p.below[&s.Node], g)
			p.below[&env.Node] = append(p.below[&env.Node], g)
		}
	}
	return nil
}

// Environments lists every environment, the primary first.
func (p *Policy) Environments() []*Environment { return p.envs }

// Reconciles reports whether the subject holds RECONCILE where it matters
// for the entitlement: on the primary environment (the policy document's
// administrators administer every grant) or on the entitlement's own.
// An empty entitlement asks about the primary environment only.
func (p *Policy) Reconciles(s Subject, entitlement string) bool {
	if envAllows(p.Environment, s, Reconcile) {
		return true
	}
	g, ok := p.Group(entitlement)
	return ok && envAllows(g.system.env, s, Reconcile)
}

// Oversees reports whether the subject may list everyone's grants: it
// holds RECONCILE or EXPORT on the primary environment.
func (p *Policy) Oversees(s Subject) bool {
	return envAllows(p.Environment, s, Reconcile) || envAllows(p.Environment, s, Export)
}

// Exports reports whether the subject holds EXPORT on the primary
// environment: it may download the grants.
func (p *Policy) Exports(s Subject) bool { return envAllows(p.Environment, s, Export) }

func envAllows(env *Environment, s Subject, required Permission) bool {
	allow, deny := nodeMasks(&env.Node, s)
	return allowed(allow, deny, required)
}

func (p *Policy) indexNode(n *Node) {
	seen, acts := map[Principal]bool{}, map[Principal]bool{}
	for _, ace := range n.ACL {
		if !seen[ace.Principal] {
			seen[ace.Principal] = true
			p.byPrincipal[ace.Principal] = append(p.byPrincipal[ace.Principal], n)
		}
		if !ace.Deny && ace.Mask&actionBits != 0 && !acts[ace.Principal] {
			acts[ace.Principal] = true
			p.actors[ace.Principal] = append(p.actors[ace.Principal], n)
		}
	}
}

// actionBits are the bits of JOIN and APPROVE_OTHERS beyond VIEW: a
// subject may act on a group only if an allow entry of theirs in its
// chain carries one of them.
const actionBits = (Join | ApproveOthers) &^ View

// Groups lists every entitlement, ordered by ID.
func (p *Policy) Groups() []*Group { return p.ordered }

// Group finds an entitlement by ID (case-insensitive).
func (p *Policy) Group(id string) (*Group, bool) {
	g, ok := p.groups[strings.ToLower(id)]
	return g, ok
}

// Access is what a subject may do with one entitlement.
type Access struct {
	Group *Group
	// View: the subject may see the entitlement.
	View bool
	// Join: the subject may request it.
	Join bool
	// SelfApprove: a request by the subject needs no approval
	// (JOIN and APPROVE_SELF both granted).
	SelfApprove bool
	// ApproveOthers: the subject may approve other people's requests.
	ApproveOthers bool
	// Refusals say why Join or ApproveOthers is not granted.
	Refusals []string
}

// Check evaluates one entitlement for a subject: what the intake and
// approval functions call at decision time.
func (p *Policy) Check(s Subject, id string) (Access, bool) {
	g, ok := p.Group(id)
	if !ok {
		return Access{}, false
	}
	return access(g, s), true
}

// Evaluate lists the entitlements the subject may act on — request
// (JOIN) or approve others' requests for (APPROVE_OTHERS) — with what
// else they may do and why not, ordered by ID.
//
// It leaves out the entitlements the subject may merely view, on purpose:
// VIEW is commonly open to everyone (JIT Groups' default environment ACL
// is class:iapUsers allow VIEW), and then a list of what one may view is
// the whole policy, 10,000 entries for 10,000 groups, however little of it
// concerns the subject. What people are shown — the entitlements of the
// API's and the pages' listings (lifecycle's Entitlements) — is what they
// may request, and a request or an approval is decided by Check, Join and
// Approve on the one entitlement. So Evaluate starts from the nodes where
// one of the subject's principals is granted more than VIEW (the actors
// index) and looks only at the groups below them: its cost is what
// concerns the subject, not the size of the policy (BenchmarkTableEvaluate).
// The whole catalogue a subject may view is Visible's.
func (p *Policy) Evaluate(s Subject) []Access {
	var candidates []*Group
	seen := map[*Group]bool{}
	add := func(g *Group) {
		if !seen[g] {
			seen[g] = true
			candidates = append(candidates, g)
		}
	}
	for _, pr := range s.Principals {
		for _, n := range p.actors[pr] {
			if g, ok := p.groupOf[n]; ok {
				add(g)
				continue
			}
			for _, g := range p.below[n] {
				add(g)
			}
		}
	}
	out := make([]Access, 0, len(candidates))
	for _, g := range candidates {
		if a := access(g, s); a.Join || a.ApproveOthers {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group.id < out[j].Group.id })
	return out
}

// Visible yields every entitlement the subject may at least view, with
// what else they may do, in ID order, one at a time: a catalogue of the
// whole policy when VIEW is open to everyone, so it costs the size of the
// policy, paid only as far as the caller reads (it may stop after a page).
// Only groups whose ACL chain mentions one of the subject's principals can
// be visible: an empty effective ACL denies everything.
func (p *Policy) Visible(s Subject) iter.Seq[Access] {
	return func(yield func(Access) bool) {
		for _, g := range p.ordered {
			if a := access(g, s); a.View && !yield(a) {
				return
			}
		}
	}
}

// masks sums the subject's allow and deny entries along the group's chain.
func masks(g *Group, s Subject) (allow, deny Permission) {
	for _, n := range g.chain() {
		a, d := nodeMasks(n, s)
		allow, deny = allow|a, deny|d
	}
	return allow, deny
}

// nodeMasks sums the subject's allow and deny entries of one node.
func nodeMasks(n *Node, s Subject) (allow, deny Permission) {
	for _, ace := range n.ACL {
		if s.Has(ace.Principal) {
			if ace.Deny {
				deny |= ace.Mask
			} else {
				allow |= ace.Mask
			}
		}
	}
	return allow, deny
}

// allowed is JIT Groups' rule (docs/jit-access.md §3.3): the allow masks
// together cover every required bit, and no deny entry shares any bit with
// it — deny wins whatever the order.
func allowed(allow, deny, required Permission) bool {
	return allow&required == required && deny&required == 0
}

func access(g *Group, s Subject) Access {
	allow, deny := masks(g, s)
	a := Access{Group: g}
	a.View = allowed(allow, deny, View)
	a.Join = allowed(allow, deny, Join)
	a.SelfApprove = a.Join && allowed(allow, deny, ApproveSelf)
	a.ApproveOthers = allowed(allow, deny, ApproveOthers)
	if !a.Join {
		a.Refusals = append(a.Refusals, refusal(g, s, Join, allow, deny))
	}
	if !a.ApproveOthers {
		a.Refusals = append(a.Refusals, refusal(g, s, ApproveOthers, allow, deny))
	}
	return a
}

func refusal(g *Group, s Subject, required, allow, deny Permission) string {
	name := strings.TrimPrefix(required.String(), "VIEW, ")
	if deny&required != 0 {
		for i, n := range g.chain() {
			for _, ace := range n.ACL {
				if ace.Deny && ace.Mask&required != 0 && s.Has(ace.Principal) {
					return fmt.Sprintf("%s is denied to %s at %s level", name, ace.Principal, [3]string{"environment", "system", "group"}[i])
				}
			}
		}
	}
	if allow == 0 {
		return fmt.Sprintf("%s: no access control entry applies to you", name)
	}
	return fmt.Sprintf("%s is not granted to you (you have %s)", name, allow)
}

// MayRequestOnBehalf reports whether the policy trusts the service account
// to request the entitlement on behalf of users (REQUEST_ON_BEHALF in the
// entitlement's ACL chain, and no deny). The user must still be allowed to
// JOIN: Join decides that for them.
func (p *Policy) MayRequestOnBehalf(serviceAccount, entitlement string) bool {
	g, ok := p.Group(entitlement)
	if !ok {
		return false
	}
	allow, deny := masks(g, NewServiceSubject(serviceAccount))
	return allowed(allow, deny, RequestOnBehalf)
}

// TrustsRequester reports whether the service account holds
// REQUEST_ON_BEHALF anywhere in the policy: a cheap first check before its
// keys are fetched (MayRequestOnBehalf decides per entitlement).
func (p *Policy) TrustsRequester(serviceAccount string) bool {
	pr := Principal{Type: ServiceAccountPrincipal, Value: emailaddr.Key(serviceAccount)}
	for _, n := range p.byPrincipal[pr] {
		for _, ace := range n.ACL {
			if ace.Principal == pr && !ace.Deny && ace.Mask&RequestOnBehalf == RequestOnBehalf {
				return true
			}
		}
	}
	return false
}

// Approvers are the principals that may approve others' requests for the
// group: user and group principals of its effective ACL that hold
// APPROVE_OTHERS on their own (docs/jit-access.md §3.5). The requester is
// left out. Group principals must be expanded by the caller.
func (g *Group) Approvers(requester string) []Principal {
	seen := map[Principal]bool{}
	var out []Principal
	for _, n := range g.chain() {
		for _, ace := range n.ACL {
			pr := ace.Principal
			if ace.Deny || seen[pr] || (pr.Type != UserPrincipal && pr.Type != GroupPrincipal) {
				continue
			}
			seen[pr] = true
			if pr.Type == UserPrincipal && pr.Value == emailaddr.Key(requester) {
				continue
			}
			var allow, deny Permission
			for _, m := range g.chain() {
				for _, e := range m.ACL {
					if e.Principal == pr {
						if e.Deny {
							deny |= e.Mask
						} else {
							allow |= e.Mask
						}
					}
				}
			}
			if allowed(allow, deny, ApproveOthers) {
				out = append(out, pr)
			}
		}
	}
	return out
}

// effective lists the constraints that apply: the group's first, then the
// system's, then the environment's, where a name already seen below hides
// the inherited one (docs/jit-access.md §3.4).
func effective(g *Group, join bool) []Constraint {
	var out []Constraint
	seen := map[string]bool{}
	chain := g.chain()
	for i := len(chain) - 1; i >= 0; i-- {
		list := chain[i].Approve
		if join {
			list = chain[i].Join
		}
		for _, c := range list {
			if !seen[c.Name()] {
				seen[c.Name()] = true
				out = append(out, c)
			}
		}
	}
	return out
}

// Expiry is the group's effective expiry constraint, if any.
func (g *Group) Expiry() (Expiry, bool) {
	for _, c := range effective(g, true) {
		if e, ok := c.(Expiry); ok {
			return e, true
		}
	}
	return Expiry{}, false
}

// Approvals is the group's effective approvals constraint, or the default
// (one approval within 24 hours).
func (g *Group) Approvals() Approvals {
	for _, c := range effective(g, false) {
		if a, ok := c.(Approvals); ok {
			return a
		}
	}
	return Approvals{Required: DefaultRequiredApprovals, Window: DefaultApprovalWindow}
}

// MaxActive is the group's effective concurrency limit; 0 means none.
func (g *Group) MaxActive() int {
	for _, c := range effective(g, true) {
		if c, ok := c.(Concurrency); ok {
			return c.Max
		}
	}
	return 0
}

// Variables are the inputs the group's expression constraints declare,
// join constraints first, by name.
func (g *Group) Variables() []Variable {
	var out []Variable
	seen := map[string]bool{}
	for _, join := range []bool{true, false} {
		for _, c := range effective(g, join) {
			if e, ok := c.(*Expression); ok {
				for _, v := range e.Variables {
					if !seen[v.Name] {
						seen[v.Name] = true
						out = append(out, v)
					}
				}
			}
		}
	}
	return out
}

// Denied is a refusal, with every reason found (a constraint's reason is its
// displayName, as in JIT Groups).
type Denied struct {
	Entitlement string
	Reasons     []string
	// Requester is set when Approve refuses because of the requester, not
	// the approver: the request itself is no longer acceptable.
	Requester bool
}

func (d *Denied) Error() string {
	return fmt.Sprintf("request for %s refused: %s", d.Entitlement, strings.Join(d.Reasons, "; "))
}

// ErrUnknownEntitlement is returned for an ID the current policy lacks.
var ErrUnknownEntitlement = errors.New("unknown entitlement")

// Request is a request to join (be granted) an entitlement.
type Request struct {
	Subject     Subject
	Entitlement string
	// Duration requested; 0 when the requester did not choose one.
	Duration time.Duration
	// Inputs for the expression constraints: JSON values or form strings.
	Inputs map[string]any
	// Active is how many grants of the entitlement are active right now,
	// for the concurrency constraint (the caller counts them).
	Active int
}

// Decision is what the policy says about an acceptable request.
type Decision struct {
	Group *Group
	// SelfApproved requests need no approval.
	SelfApproved bool
	Duration     time.Duration
	// Inputs, typed per their declarations.
	Inputs map[string]any
	// Approvers who may approve (when not self-approved) and how many
	// approvals within what window are needed.
	Approvers []Principal
	Approvals Approvals
}

// Join decides a request: the requester must hold JOIN; join constraints
// must hold (and approve constraints too when the request is
// self-approved); the duration must fit the expiry; there must be someone
// who can approve it, and room under the concurrency limit.
func (p *Policy) Join(r Request) (*Decision, error) {
	g, ok := p.Group(r.Entitlement)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownEntitlement, r.Entitlement)
	}
	denied := &Denied{Entitlement: g.id}
	acc := access(g, r.Subject)
	if !acc.Join {
		denied.Reasons = append(denied.Reasons, acc.Refusals[0])
		return nil, denied
	}
	d := &Decision{Group: g, SelfApproved: acc.SelfApprove, Approvals: g.Approvals()}
	if exp, ok := g.Expiry(); !ok {
		denied.Reasons = append(denied.Reasons, "The entitlement doesn't specify an expiry constraint")
	} else if dur, err := exp.Check(r.Duration); err != nil {
		denied.Reasons = append(denied.Reasons, err.Error())
	} else {
		d.Duration = dur
	}
	inputs, errs := convertInputs(g, r.Inputs)
	denied.Reasons = append(denied.Reasons, errs...)
	d.Inputs = inputs
	if len(errs) == 0 {
		ctx := evalContext{subject: r.Subject, group: g, inputs: inputs}
		denied.Reasons = append(denied.Reasons, evalAll(effective(g, true), ctx)...)
		if d.SelfApproved {
			denied.Reasons = append(denied.Reasons, evalAll(effective(g, false), ctx)...)
		}
	}
	if max := g.MaxActive(); max > 0 && r.Active >= max {
		denied.Reasons = append(denied.Reasons, Concurrency{Max: max}.DisplayName()+fmt.Sprintf(": %d already active", r.Active))
	}
	if !d.SelfApproved {
		d.Approvers = g.Approvers(r.Subject.Email)
		if len(d.Approvers) == 0 {
			denied.Reasons = append(denied.Reasons, "There are no principals that could approve the request to join this group")
		}
	}
	if len(denied.Reasons) > 0 {
		return nil, denied
	}
	return d, nil
}

// Approval is an approver's decision to re-check against the current policy.
type Approval struct {
	Approver    Subject
	Requester   Subject
	Entitlement string
	Duration    time.Duration
	Inputs      map[string]any
}

// Approve decides whether an approver may approve a request now: they need
// APPROVE_OTHERS (or, for their own request, JOIN and APPROVE_SELF) on the
// current policy, the approve constraints must hold for them, and the
// requester must still hold JOIN and the request satisfy the join
// constraints (docs/jit-access.md §3.5). A refusal for the approver's sake
// comes first; one for the request's sake has Denied.Requester set.
func (p *Policy) Approve(a Approval) (*Decision, error) {
	g, ok := p.Group(a.Entitlement)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownEntitlement, a.Entitlement)
	}
	denied := &Denied{Entitlement: g.id}
	acc := access(g, a.Approver)
	self := a.Approver.Email == a.Requester.Email
	switch {
	case self && !acc.SelfApprove:
		denied.Reasons = append(denied.Reasons, "You cannot approve your own request: APPROVE_SELF is not granted to you")
	case !self && !acc.ApproveOthers:
		allow, deny := masks(g, a.Approver)
		denied.Reasons = append(denied.Reasons, refusal(g, a.Approver, ApproveOthers, allow, deny))
	}
	if len(denied.Reasons) > 0 {
		return nil, denied
	}
	inputs, errs := convertInputs(g, a.Inputs)
	d := &Decision{Group: g, SelfApproved: self, Inputs: inputs, Approvals: g.Approvals()}
	if len(errs) == 0 {
		denied.Reasons = append(denied.Reasons, evalAll(effective(g, false), evalContext{subject: a.Approver, group: g, inputs: inputs})...)
		if len(denied.Reasons) > 0 {
			return nil, denied
		}
	}
	// The request must still be one the requester may make: JOIN under
	// the policy in force, the expiry and the join constraints.
	denied.Requester = true
	if req := access(g, a.Requester); !req.Join {
		denied.Reasons = append(denied.Reasons, "The requester may no longer join this group: "+req.Refusals[0])
		return nil, denied
	}
	denied.Reasons = append(denied.Reasons, errs...)
	if exp, ok := g.Expiry(); !ok {
		denied.Reasons = append(denied.Reasons, "The entitlement doesn't specify an expiry constraint")
	} else if dur, err := exp.Check(a.Duration); err != nil {
		denied.Reasons = append(denied.Reasons, err.Error())
	} else {
		d.Duration = dur
	}
	if len(errs) == 0 {
		denied.Reasons = append(denied.Reasons, evalAll(effective(g, true), evalContext{subject: a.Requester, group: g, inputs: inputs})...)
	}
	if len(denied.Reasons) > 0 {
		return nil, denied
	}
	return d, nil
}

func evalAll(cs []Constraint, ctx evalContext) []string {
	var out []string
	for _, c := range cs {
		if e, ok := c.(*Expression); ok {
			if err := e.eval(ctx); err != nil {
				out = append(out, err.Error())
			}
		}
	}
	return out
}

// convertInputs types the raw inputs against the group's declarations.
// Undeclared inputs are refused: they are most likely a typo.
func convertInputs(g *Group, raw map[string]any) (map[string]any, []string) {
	vars := g.Variables()
	out := make(map[string]any, len(vars))
	var errs []string
	declared := map[string]bool{}
	for _, v := range vars {
		declared[v.Name] = true
		val, present := raw[v.Name]
		typed, err := v.convert(val, present && val != nil)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		out[v.Name] = typed
	}
	var unknown []string
	for k := range raw {
		if !declared[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		errs = append(errs, fmt.Sprintf("input %q is not declared by this entitlement's constraints", k))
	}
	return out, errs
}
