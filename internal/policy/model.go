package policy

import (
	"fmt"
	"strings"
)

// Node is what environments, systems and groups share: a name, an access
// control list and constraints, inherited downward (docs/jit-access.md §3.3, §3.4).
type Node struct {
	Name        string
	Description string
	// ACL entries of this level; the effective ACL of a group is the
	// environment's, then the system's, then the group's own.
	ACL []ACE
	// Join constraints apply to the requester (and, for a self-approved
	// request, so do approve constraints); approve constraints apply to the
	// approver. A lower level's constraint replaces an inherited one of the
	// same name.
	Join    []Constraint
	Approve []Constraint
}

// ACE is an access control entry: it allows or denies a set of
// permissions to one principal.
type ACE struct {
	Principal Principal
	Deny      bool
	Mask      Permission
}

func (a ACE) String() string {
	verb := "allow"
	if a.Deny {
		verb = "deny"
	}
	return fmt.Sprintf("%s %s %s", a.Principal, verb, a.Mask)
}

// Environment is the root of a policy document: a segment of the
// organization with its systems.
type Environment struct {
	Node
	Systems []*System
	// Classic, if set, marks an environment made of JIT Access's eligible
	// role bindings (package policy/classic) and carries its request
	// options.
	Classic *Classic
}

// Classic holds JIT Access 1.x's request options, by their option names
// (docs/jit-access.md §2.1): they apply to the entitlements of a classic
// environment only.
type Classic struct {
	// MaxRoles is ACTIVATION_REQUEST_MAX_ROLES: how many self-approved
	// roles of one project one request may activate.
	MaxRoles int
	// MinReviewers and MaxReviewers are ACTIVATION_REQUEST_MIN_REVIEWERS
	// and ACTIVATION_REQUEST_MAX_REVIEWERS: how many peers the requester
	// of a peer-approved role must choose.
	MinReviewers, MaxReviewers int
}

// System groups related entitlements.
type System struct {
	Node
	Groups []*Group
	env    *Environment
}

// Environment is the system's parent.
func (s *System) Environment() *Environment { return s.env }

// Group is an entitlement: a bundle of IAM role bindings that a user may
// request for a bounded time.
type Group struct {
	Node
	Privileges []Privilege
	system     *System
	id         string
}

// System is the group's parent.
func (g *Group) System() *System { return g.system }

// Classic returns the JIT Access options of the group's environment, or
// nil for a group of a policy document.
func (g *Group) Classic() *Classic { return g.system.env.Classic }

// ID identifies the entitlement: environment.system.group, lower-case
// (the JIT Groups group id without its "jit-group:" prefix).
func (g *Group) ID() string { return g.id }

// Privilege is one IAM role binding a group grants.
type Privilege struct {
	// Resource is the full name: projects/ID, folders/ID or organizations/ID.
	Resource    string
	Role        string
	Description string
	// Condition, if set, is a resource condition AND-ed into the grant's
	// time condition.
	Condition string
}

func (p Privilege) String() string {
	s := p.Role + " on " + p.Resource
	if p.Condition != "" {
		s += " if " + p.Condition
	}
	return s
}

// chain is the group's nodes from the environment down.
func (g *Group) chain() [3]*Node {
	return [3]*Node{&g.system.env.Node, &g.system.Node, &g.Node}
}

func groupID(env, system, group string) string {
	return strings.ToLower(env + "." + system + "." + group)
}
