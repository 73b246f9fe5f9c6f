package localiam

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"cloud.google.com/go/iam/apiv1/iampb"
	"google.golang.org/genproto/googleapis/type/expr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Quotas from https://docs.cloud.google.com/iam/quotas (docs/google-cloud.md §1,
// Limits). The real service reports the principal limit as INVALID_ARGUMENT
// ("The number of members in the policy (1,503) is larger than the maximum
// allowed size 1,500.", kubeflow/pipelines#1146), so every limit here uses
// INVALID_ARGUMENT too.
const (
	maxPrincipals              = 1500
	maxDomainsAndGroups        = 250
	maxConditionsPerRoleMember = 20
)

// withCondMarker joins role and condition hash when a conditional binding is
// shown to a reader that asked for version 1 (docs/google-cloud.md §1).
const withCondMarker = "_withcond_"

// abortedMessage is the real text of an etag mismatch (docs/google-cloud.md §1).
const abortedMessage = "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff."

// initialEtag is what the real service shows for a resource whose policy was
// never written: base64 "ACAB".
var initialEtag = []byte{0x00, 0x20, 0x01}

var (
	basicRoles  = map[string]bool{"roles/owner": true, "roles/editor": true, "roles/viewer": true}
	rolePattern = regexp.MustCompile(`^(roles|projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/roles|organizations/[0-9]+/roles)/[a-zA-Z0-9_.]{1,100}$`)
)

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// checkPolicy validates a policy sent to SetIamPolicy for a resource of kind
// k, without looking at the stored policy, and returns its normalised form:
// identical (role, condition) bindings merged, members canonical, de-duplicated
// and sorted, bindings sorted, version 3 if any binding has a condition, else 1.
func (s *Server) checkPolicy(p *iampb.Policy, k kind) (*iampb.Policy, error) {
	v := p.GetVersion()
	if v != 0 && v != 1 && v != 3 {
		// docs/google-cloud.md §1: only 0, 1 and 3 are valid.
		return nil, invalid("Invalid policy version %d: valid values are 0, 1 and 3.", v)
	}

	principals := 0
	groups := map[string]bool{}
	domains := 0
	perRoleMember := map[string]map[string]bool{} // role+member -> condition keys

	type merged struct {
		role    string
		cond    *expr.Expr
		members map[string]bool
	}
	bindings := map[string]*merged{}
	var order []*merged // first appearance, usually already sorted
	// A policy of many grants repeats a few roles; each is matched once.
	roleOK := map[string]bool{}

	for _, b := range p.GetBindings() {
		role := b.GetRole()
		switch {
		case roleOK[role]:
		case role == "":
			return nil, invalid("A binding has no role.")
		case strings.Contains(role, withCondMarker):
			// The classic bug: a policy read at version 1 written back.
			return nil, invalid("Role %s is a version 1 rendering of a conditional binding and cannot be set; read the policy with requested_policy_version 3 and write it back with version 3.", role)
		case !rolePattern.MatchString(role):
			return nil, invalid("Role %s is not supported for this resource.", role)
		default:
			roleOK[role] = true
		}
		if len(b.GetMembers()) == 0 {
			// policy.pb.go: "bindings with no members will result in an error".
			return nil, invalid("The binding for role %s has no members.", role)
		}
		cond := b.GetCondition()
		if cond != nil {
			if err := s.checkCondition(role, cond, v, b.GetMembers()); err != nil {
				return nil, err
			}
		}
		// Computed once per binding, not once per member: a policy of a
		// thousand grants would otherwise build thousands of these.
		ck := conditionKey(cond)
		key := role + "\x00" + ck
		m := bindings[key]
		if m == nil {
			m = &merged{role: role, cond: cond, members: map[string]bool{}}
			bindings[key] = m
			order = append(order, m)
		}
		for _, raw := range b.GetMembers() {
			member, err := canonicalMember(raw)
			if err != nil {
				return nil, invalid("%s", capitalise(err.Error()))
			}
			if k == kindProject && (member == "allUsers" || member == "allAuthenticatedUsers") {
				// projects_client.go SetIamPolicy (docs/google-cloud.md §2).
				return nil, invalid("Project does not support %s as a member of a binding.", member)
			}
			principals++
			switch {
			case strings.HasPrefix(member, "group:"):
				groups[member] = true
			case strings.HasPrefix(member, "domain:"):
				domains++
			}
			if cond != nil {
				rm := role + "\x00" + member
				if perRoleMember[rm] == nil {
					perRoleMember[rm] = map[string]bool{}
				}
				perRoleMember[rm][ck] = true
				if n := len(perRoleMember[rm]); n > maxConditionsPerRoleMember {
					return nil, invalid("The policy has %d bindings of role %s for member %s with different conditions; the maximum is %d.", n, role, member, maxConditionsPerRoleMember)
				}
			}
			m.members[member] = true
		}
	}

	var audits []*iampb.AuditConfig
	for _, a := range p.GetAuditConfigs() {
		if a.GetService() == "" {
			return nil, invalid("An audit config has no service.")
		}
		a = proto.Clone(a).(*iampb.AuditConfig)
		for _, lc := range a.GetAuditLogConfigs() {
			for i, raw := range lc.GetExemptedMembers() {
				member, err := canonicalMember(raw)
				if err != nil {
					return nil, invalid("%s", capitalise(err.Error()))
				}
				lc.ExemptedMembers[i] = member
				principals++ // audit exemptions count too (quotas page)
			}
		}
		audits = append(audits, a)
	}

	if principals > maxPrincipals {
		return nil, invalid("The number of members in the policy (%s) is larger than the maximum allowed size %s.", thousands(principals), thousands(maxPrincipals))
	}
	if n := len(groups) + domains; n > maxDomainsAndGroups {
		return nil, invalid("The number of domains and groups in the policy (%d) is larger than the maximum allowed size %d.", n, maxDomainsAndGroups)
	}

	out := &iampb.Policy{Version: 1, AuditConfigs: audits}
	for _, m := range order {
		members := make([]string, 0, len(m.members))
		for member := range m.members {
			members = append(members, member)
		}
		slices.Sort(members)
		var cond *expr.Expr
		if m.cond != nil {
			cond = proto.Clone(m.cond).(*expr.Expr)
			out.Version = 3
		}
		out.Bindings = append(out.Bindings, &iampb.Binding{Role: m.role, Members: members, Condition: cond})
	}
	// A policy read, changed and written back arrives in the stored order,
	// so the sort is skipped when a linear check finds nothing to do.
	if !slices.IsSortedFunc(out.Bindings, compareBindings) {
		sortBindings(out.Bindings)
	}
	return out, nil
}

// checkCondition applies the rules of conditions-overview (docs/google-cloud.md §1).
func (s *Server) checkCondition(role string, cond *expr.Expr, version int32, members []string) error {
	if version != 3 {
		return invalid("The binding for role %s has a condition, which requires policy version 3; the policy has version %d.", role, version)
	}
	if strings.TrimSpace(cond.GetTitle()) == "" {
		return invalid("The condition of the binding for role %s has no title.", role)
	}
	if strings.TrimSpace(cond.GetExpression()) == "" {
		return invalid("The condition of the binding for role %s has no expression.", role)
	}
	if basicRoles[role] {
		return invalid("Conditions are not supported for the basic role %s.", role)
	}
	for _, m := range members {
		if m == "allUsers" || m == "allAuthenticatedUsers" {
			return invalid("Conditions are not supported for %s (binding for role %s).", m, role)
		}
	}
	c := s.conds.lookup(cond.GetExpression())
	if c.ops > maxLogicalOperators {
		return invalid("The condition of the binding for role %s has %d logical operators; the maximum is %d.", role, c.ops, maxLogicalOperators)
	}
	if c.err != nil {
		return invalid("The condition expression of the binding for role %s is invalid: %v", role, c.err)
	}
	return nil
}

// conditionKey identifies a condition for merging and hashing; "" for none.
func conditionKey(c *expr.Expr) string {
	if c == nil {
		return ""
	}
	return strings.Join([]string{c.GetExpression(), c.GetTitle(), c.GetDescription(), c.GetLocation()}, "\x00")
}

// conditionHash is the deterministic suffix of a _withcond_ role name.
func conditionHash(c *expr.Expr) string {
	sum := sha256.Sum256([]byte(conditionKey(c)))
	return hex.EncodeToString(sum[:])[:20]
}

// sortBindings orders bindings by role, then condition (none first, then
// by expression, title, description and location).
func sortBindings(bs []*iampb.Binding) { slices.SortFunc(bs, compareBindings) }

// compareBindings is the order of sortBindings. It compares field by field
// rather than building conditionKey strings: sorting a thousand bindings
// calls it some ten thousand times on every SetIamPolicy.
func compareBindings(a, b *iampb.Binding) int {
	if c := strings.Compare(a.GetRole(), b.GetRole()); c != 0 {
		return c
	}
	ca, cb := a.GetCondition(), b.GetCondition()
	switch {
	case ca == nil && cb == nil:
		return 0
	case ca == nil:
		return -1
	case cb == nil:
		return 1
	}
	for _, f := range [...][2]string{
		{ca.GetExpression(), cb.GetExpression()},
		{ca.GetTitle(), cb.GetTitle()},
		{ca.GetDescription(), cb.GetDescription()},
		{ca.GetLocation(), cb.GetLocation()},
	} {
		if c := strings.Compare(f[0], f[1]); c != 0 {
			return c
		}
	}
	return 0
}

// sameBinding reports whether two bindings of the same role and condition
// (compareBindings 0) also have the same members; checkPolicy leaves them
// canonical and sorted, so the slices compare directly.
func sameBinding(a, b *iampb.Binding) bool {
	return slices.Equal(a.GetMembers(), b.GetMembers())
}

func hasConditions(p *iampb.Policy) bool {
	for _, b := range p.GetBindings() {
		if b.GetCondition() != nil {
			return true
		}
	}
	return false
}

// formatPolicy renders a stored policy for a reader that asked for
// requested (0, 1 or 3): below 3, conditional bindings lose their condition
// and their role becomes <role>_withcond_<hash>; the version is 3 only if
// requested and the policy has conditions (docs/google-cloud.md §1, options.pb.go).
func formatPolicy(stored *iampb.Policy, requested int32) *iampb.Policy {
	p := proto.Clone(stored).(*iampb.Policy)
	if !hasConditions(p) {
		p.Version = 1
		return p
	}
	if requested == 3 {
		p.Version = 3
		return p
	}
	p.Version = 1
	for _, b := range p.Bindings {
		if b.Condition != nil {
			b.Role = b.Role + withCondMarker + conditionHash(b.Condition)
			b.Condition = nil
		}
	}
	return p
}

// newEtag returns a fresh opaque etag, different from old.
func newEtag(old []byte) []byte {
	for {
		e := make([]byte, 8)
		e[0] = 0x07
		_, _ = rand.Read(e[1:]) // crypto/rand.Read never fails
		if !bytes.Equal(e, old) {
			return e
		}
	}
}

// thousands formats n as the real messages do: 1,503.
func thousands(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// emptyPolicy is the policy of a resource nobody has written yet.
func emptyPolicy() *iampb.Policy {
	return &iampb.Policy{Version: 1, Etag: slices.Clone(initialEtag)}
}

// describeMembers lists members for error messages.
func describeMembers(ms []string) string { return fmt.Sprintf("%q", ms) }
