package iambinding

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"google.golang.org/genproto/googleapis/type/expr"
	"google.golang.org/protobuf/proto"

	"github.com/jitpipeline/jit/internal/emailaddr"
	"github.com/jitpipeline/jit/internal/iamcond"
)

// withCondMarker is how IAM names a conditional binding's role to a
// version-1 reader (docs/google-cloud.md §1); such a role must never be written.
const withCondMarker = "_withcond_"

// planned is a validated change, ready to be applied to a policy.
type planned struct {
	Change
	index  int    // position in the caller's list
	member string // Member, normalised as IAM stores it
	cond   string // the resource condition in iamcond's canonical form
	norm   Key    // the key with member and condition normalised
}

// newPlanned validates c, reporting every problem at once.
func newPlanned(c Change) (planned, error) {
	var errs []error
	switch {
	case c.Role == "":
		errs = append(errs, errors.New("Role is required"))
	case strings.Contains(c.Role, withCondMarker):
		errs = append(errs, fmt.Errorf("role %q is a version-1 rendering of a conditional binding", c.Role))
	case !strings.HasPrefix(c.Role, "roles/") && !strings.Contains(c.Role, "/roles/"):
		errs = append(errs, fmt.Errorf("role %q is not roles/NAME or a custom role's full name", c.Role))
	}
	member, err := normaliseMember(c.Member)
	if err != nil {
		errs = append(errs, err)
	}
	cond, err := canonicalCondition(c.Condition)
	if err != nil {
		errs = append(errs, err)
	} else if n := iamcond.CountLogicalOperators(iamcond.Activation(time.Time{}, time.Time{}, c.Condition)); n > iamcond.MaxLogicalOperators {
		// docs/google-cloud.md §1, Limits: 12 logical operators per condition; the
		// window itself takes two.
		errs = append(errs, fmt.Errorf("the condition with its time window has %d logical operators; IAM allows %d", n, iamcond.MaxLogicalOperators))
	}
	for i, w := range c.Windows {
		if w.Start.IsZero() || w.End.IsZero() {
			errs = append(errs, fmt.Errorf("window %d (grant %q) needs a start and an end", i, w.GrantID))
		} else if !w.End.After(w.Start) {
			errs = append(errs, fmt.Errorf("window %d (grant %q) ends at %v, not after its start %v", i, w.GrantID, w.End, w.Start))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return planned{}, err
	}
	norm := c.Key
	norm.Member, norm.Condition = member, cond
	return planned{Change: c, member: member, cond: cond, norm: norm}, nil
}

// normaliseMember checks that m is a user, group or service account and
// returns it as IAM stores it: the email lower-cased (emailaddr).
func normaliseMember(m string) (string, error) {
	typ, email, ok := strings.Cut(m, ":")
	switch {
	case m == "":
		return "", errors.New("Member is required")
	case !ok || (typ != "user" && typ != "group" && typ != "serviceAccount"):
		return "", fmt.Errorf("member %q is not user:EMAIL, group:EMAIL or serviceAccount:EMAIL", m)
	}
	canonical, err := emailaddr.Canonical(email)
	if err != nil {
		return "", fmt.Errorf("member %q does not name an email address: %w", m, err)
	}
	return typ + ":" + canonical, nil
}

// sameMember compares a policy member with a normalised one, by ASCII
// case only: a look-alike in the policy is not our member.
func sameMember(policyMember, normalised string) bool {
	typ, email, ok := strings.Cut(policyMember, ":")
	return ok && typ+":"+emailaddr.Key(email) == normalised
}

// canonicalCondition returns a resource condition in the canonical form
// iamcond.ParseActivation reports for the bindings it recognises, so that a
// binding read back can be matched with the key that wrote it.
func canonicalCondition(c string) (string, error) {
	if strings.TrimSpace(c) == "" {
		return "", nil
	}
	if iamcond.HasTemporaryClause(c) {
		return "", fmt.Errorf("resource condition %q must not hold a time window of its own", c)
	}
	_, _, rc, ok := iamcond.ParseActivation(iamcond.Activation(time.Time{}, time.Time{}, c))
	if !ok {
		return "", fmt.Errorf("resource condition %q is not a valid CEL condition", c)
	}
	return rc, nil
}

// want returns the condition the key's binding must have at now: the
// union of the windows that have not ended, or nil if none is left. The
// windows are judged in whole seconds, as the expression holds them, so a
// binding is never written that purgeExpired would remove at once.
func (p planned) want(now time.Time) *expr.Expr {
	var live []Window
	var start, end time.Time
	for _, w := range p.Windows {
		s, e := w.Start.Truncate(time.Second), w.End.Truncate(time.Second)
		if !e.After(now) || !e.After(s) {
			continue
		}
		if len(live) == 0 || s.Before(start) {
			start = s
		}
		if len(live) == 0 || e.After(end) {
			end = e
		}
		live = append(live, w)
	}
	if len(live) == 0 {
		return nil
	}
	return &expr.Expr{
		Title:       iamcond.ActivationTitle,
		Expression:  iamcond.Activation(start, end, p.Condition),
		Description: description(live),
	}
}

// owns reports whether b is a temporary binding of the key: the same role,
// the member among its members, a temporary clause in its condition (any
// title, active or expired: docs/jit-access.md §4) and the same resource
// condition. A temporary binding of the member and role whose condition
// cannot be parsed further is owned too: it is the junk the purge rule of
// JIT Access removes, and no key could ever claim it otherwise.
func (p planned) owns(b *iampb.Binding) bool {
	if b.GetRole() != p.Role || b.GetCondition() == nil {
		return false
	}
	if !slices.ContainsFunc(b.GetMembers(), func(m string) bool { return sameMember(m, p.member) }) {
		return false
	}
	e := b.GetCondition().GetExpression()
	if !iamcond.HasTemporaryClause(e) {
		return false
	}
	_, _, rc, ok := iamcond.ParseActivation(e)
	return !ok || rc == p.cond
}

// apply edits the policy so that the key is as wanted at now and reports
// whether it changed anything. The member's owned bindings are removed
// (the member alone, where IAM merged identical conditions of several
// members into one binding) and, if a window is left, one binding is
// added; every other binding keeps its place and content.
func (p planned) apply(policy *iampb.Policy, now time.Time) bool {
	want := p.want(now)
	var owned []int
	for i, b := range policy.GetBindings() {
		if p.owns(b) {
			owned = append(owned, i)
		}
	}
	switch {
	case want == nil && len(owned) == 0:
		return false
	case want != nil && len(owned) == 1 && proto.Equal(policy.Bindings[owned[0]].GetCondition(), want):
		return false
	}
	kept := make([]*iampb.Binding, 0, len(policy.Bindings)+1)
	for i, b := range policy.Bindings {
		if !slices.Contains(owned, i) {
			kept = append(kept, b)
			continue
		}
		rest := slices.DeleteFunc(slices.Clone(b.Members), func(m string) bool { return sameMember(m, p.member) })
		if len(rest) > 0 {
			b.Members = rest
			kept = append(kept, b)
		}
	}
	if want != nil {
		// IAM merges bindings with the same role and condition; join such a
		// binding rather than send a duplicate.
		i := slices.IndexFunc(kept, func(b *iampb.Binding) bool {
			return b.GetRole() == p.Role && proto.Equal(b.GetCondition(), want)
		})
		if i >= 0 {
			kept[i].Members = append(kept[i].Members, p.member)
		} else {
			kept = append(kept, &iampb.Binding{Role: p.Role, Members: []string{p.member}, Condition: want})
		}
	}
	policy.Bindings = kept
	return true
}

// check judges a policy read back for the key at now.
func (p planned) check(policy *iampb.Policy, now time.Time) Check {
	c := Check{Key: p.Key, At: now, Want: p.want(now)}
	for _, b := range policy.GetBindings() {
		if p.owns(b) {
			c.Found = append(c.Found, b.GetCondition())
		}
	}
	switch {
	case c.Want == nil && len(c.Found) == 0:
		c.Verified = true
	case c.Want == nil:
		c.Problem = fmt.Sprintf("%d temporary binding(s) remain, none wanted", len(c.Found))
	case len(c.Found) == 0:
		c.Problem = "the binding is missing"
	case len(c.Found) > 1:
		c.Problem = fmt.Sprintf("%d temporary bindings found, one wanted", len(c.Found))
	case !proto.Equal(c.Found[0], c.Want):
		c.Problem = fmt.Sprintf("the binding's condition is %q (%s), want %q (%s)",
			c.Found[0].GetExpression(), c.Found[0].GetDescription(), c.Want.GetExpression(), c.Want.GetDescription())
	default:
		c.Verified = true
	}
	return c
}

// purgeExpired removes every JIT activation (title iamcond.ActivationTitle
// and a recognisable window) whose window has ended by now, whoever its
// members are: IAM never removes expired bindings, and they count against
// the policy's limits forever (docs/google-cloud.md §1). It reports how many it
// removed.
func purgeExpired(policy *iampb.Policy, now time.Time) int {
	n := 0
	policy.Bindings = slices.DeleteFunc(policy.Bindings, func(b *iampb.Binding) bool {
		c := b.GetCondition()
		if c.GetTitle() != iamcond.ActivationTitle {
			return false
		}
		_, end, _, ok := iamcond.ParseActivation(c.GetExpression())
		if ok && !end.After(now) {
			n++
			return true
		}
		return false
	})
	return n
}
