package localiam

import (
	"context"
	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
)

// HasRole reports whether principal (e.g. "user:alice@example.com") holds
// role on resource at time at: through a binding on the resource or one of
// its ancestors, naming the principal directly, through a group
// (Config.Members) or a domain, whose condition (if any) is true at at, with
// request.time = at and resource.name/type of the resource asked about. It is
// the ground truth tests compare the pipeline's effects with.
func (s *Server) HasRole(ctx context.Context, principal, role, resource string, at time.Time) (bool, error) {
	p, err := canonicalPrincipal(principal)
	if err != nil {
		return false, fmt.Errorf("failed to check role %s: %w", role, err)
	}
	bindings, ec, err := s.scope(resource, at)
	if err != nil {
		return false, err
	}
	m := s.newMatcher(ctx, p)
	for _, b := range bindings {
		if b.GetRole() != role {
			continue
		}
		ok, err := m.binds(b, ec, s.conds)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// scope returns the effective bindings of resource and the condition context
// of a request on it at time at.
func (s *Server) scope(resource string, at time.Time) ([]*iampb.Binding, evalContext, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.lookupLocked(resource)
	if r == nil {
		return nil, evalContext{}, fmt.Errorf("unknown resource %q", resource)
	}
	ec := evalContext{at: at, resourceName: r.conditionName(), resourceType: r.kind.resourceType()}
	return s.effectiveLocked(r), ec, nil
}

// permitted returns the subset of permissions principal holds given the
// effective bindings.
func (s *Server) permitted(ctx context.Context, principal string, bindings []*iampb.Binding, ec evalContext, permissions []string) ([]string, error) {
	m := s.newMatcher(ctx, principal)
	held := map[string]bool{}
	for _, b := range bindings {
		var wanted bool
		for _, perm := range permissions {
			if !held[perm] && roleGrants(b.GetRole(), perm) {
				wanted = true
			}
		}
		if !wanted {
			continue
		}
		ok, err := m.binds(b, ec, s.conds)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		for _, perm := range permissions {
			if roleGrants(b.GetRole(), perm) {
				held[perm] = true
			}
		}
	}
	var out []string
	for _, perm := range permissions {
		if held[perm] {
			out = append(out, perm)
			held[perm] = false // report each permission once
		}
	}
	return out, nil
}

// matcher decides whether binding members cover one principal, caching
// group expansions for the duration of one check.
type matcher struct {
	ctx       context.Context
	principal string
	members   func(ctx context.Context, group string) ([]string, error)
	inGroup   map[string]bool
}

func (s *Server) newMatcher(ctx context.Context, principal string) *matcher {
	return &matcher{ctx: ctx, principal: principal, members: s.cfg.Members, inGroup: map[string]bool{}}
}

// binds reports whether binding b applies to the principal in ec.
func (m *matcher) binds(b *iampb.Binding, ec evalContext, conds *conditions) (bool, error) {
	var covered bool
	for _, member := range b.GetMembers() {
		ok, err := m.covers(member)
		if err != nil {
			return false, err
		}
		if ok {
			covered = true
			break
		}
	}
	if !covered {
		return false, nil
	}
	if c := b.GetCondition(); c != nil {
		return conds.eval(c.GetExpression(), ec), nil
	}
	return true, nil
}

// covers reports whether a binding member includes the principal.
func (m *matcher) covers(member string) (bool, error) {
	switch {
	case member == m.principal:
		return true, nil
	case member == "allUsers", member == "allAuthenticatedUsers":
		return true, nil
	case strings.HasPrefix(member, "domain:"):
		return strings.HasPrefix(m.principal, "user:") &&
			strings.HasSuffix(m.principal, "@"+strings.TrimPrefix(member, "domain:")), nil
	case strings.HasPrefix(member, "group:"):
		return m.groupContains(strings.TrimPrefix(member, "group:"), map[string]bool{})
	}
	return false, nil
}

// groupContains follows nested groups, guarding against cycles.
func (m *matcher) groupContains(group string, seen map[string]bool) (bool, error) {
	if m.members == nil || seen[group] {
		return false, nil
	}
	if v, ok := m.inGroup[group]; ok {
		return v, nil
	}
	// Only a top-level answer is the full closure; a nested one may have
	// been cut short by a cycle, so it is not cached.
	top := len(seen) == 0
	seen[group] = true
	members, err := m.members(m.ctx, group)
	if err != nil {
		return false, fmt.Errorf("failed to resolve the members of group %s: %w", group, err)
	}
	found := false
	for _, raw := range members {
		member, err := canonicalMember(raw)
		if err != nil {
			continue // a resolver's malformed entry matches nobody
		}
		if member == m.principal {
			found = true
			break
		}
		if strings.HasPrefix(member, "group:") {
			ok, err := m.groupContains(strings.TrimPrefix(member, "group:"), seen)
			if err != nil {
				return false, err
			}
			if ok {
				found = true
				break
			}
		}
	}
	if top {
		m.inGroup[group] = found
	}
	return found, nil
}
