package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func mustParse(t testing.TB, doc string) *Policy {
	t.Helper()
	pol, issues := Parse([]byte(doc))
	if issues != nil {
		t.Fatalf("policy does not parse:\n%v", issues)
	}
	return pol
}

// doc builds a one-group policy from ACL lines at three levels.
func doc(envACL, sysACL, groupACL []string, constraints string) string {
	acl := func(indent string, entries []string) string {
		if entries == nil {
			return ""
		}
		if len(entries) == 0 {
			return indent + "access: []\n" // empty, unlike an omitted access
		}
		var b strings.Builder
		b.WriteString(indent + "access:\n")
		for _, e := range entries {
			principal, rest, _ := strings.Cut(e, " ")
			verb, perms, _ := strings.Cut(rest, " ")
			fmt.Fprintf(&b, "%s  - principal: %q\n%s    %s: %q\n", indent, principal, indent, verb, perms)
		}
		return b.String()
	}
	if constraints == "" {
		constraints = "          constraints:\n            join:\n              - type: expiry\n                min: PT1H\n                max: PT8H\n"
	}
	return "schemaVersion: 1\nenvironment:\n  name: env\n" + acl("  ", envACL) +
		"  systems:\n    - name: sys\n" + acl("      ", sysACL) +
		"      groups:\n        - name: grp\n" + acl("          ", groupACL) + constraints
}

var (
	ann      = NewSubject("ann@example.com", []string{"sre@example.com"}, true)
	ben      = NewSubject("ben@example.com", nil, true)
	mallory  = NewSubject("mallory@evil.example", nil, false)
	managers = NewSubject("mgr@example.com", []string{"managers@example.com"}, true)
)

// docs/jit-access.md §3.3: allowed iff the allow masks cover the required
// bits and no matching deny shares a bit with them — deny wins regardless
// of order, at any level.
func TestDenyBeatsAllowInAnyOrder(t *testing.T) {
	t.Parallel()
	allow := "user:ann@example.com allow JOIN,APPROVE_SELF"
	deny := "group:sre@example.com deny JOIN"
	for name, levels := range map[string][3][]string{
		"deny after allow, same level":  {nil, nil, {allow, deny}},
		"deny before allow, same level": {nil, nil, {deny, allow}},
		"deny above":                    {{deny}, nil, {allow}},
		"deny below":                    {nil, {allow}, {deny}},
		"deny in system, allow in env":  {{allow}, {deny}, nil},
	} {
		pol := mustParse(t, doc(levels[0], levels[1], levels[2], ""))
		a, _ := pol.Check(ann, "env.sys.grp")
		if a.Join || a.SelfApprove || a.View {
			t.Errorf("%s: %+v, want nothing (deny JOIN includes VIEW)", name, a)
		}
		if len(a.Refusals) == 0 || !strings.Contains(a.Refusals[0], "denied to group:sre@example.com") {
			t.Errorf("%s: refusals %q", name, a.Refusals)
		}
		if _, err := pol.Join(Request{Subject: ann, Entitlement: "env.sys.grp", Duration: time.Hour}); err == nil {
			t.Errorf("%s: Join allowed", name)
		}
	}
}

// docs/jit-access.md §3.3: the effective ACL is env ++ system ++ group; masks
// from different levels and principals add up.
func TestInheritedACLsCombine(t *testing.T) {
	t.Parallel()
	pol := mustParse(t, doc(
		[]string{"class:iapUsers allow VIEW"},
		[]string{"group:sre@example.com allow JOIN"},
		[]string{"user:ann@example.com allow APPROVE_SELF", "group:managers@example.com allow APPROVE_OTHERS"}, ""))
	for _, tc := range []struct {
		who  Subject
		want Access
	}{
		{ann, Access{View: true, Join: true, SelfApprove: true}},
		{ben, Access{View: true}},
		{managers, Access{View: true, ApproveOthers: true}},
	} {
		got, _ := pol.Check(tc.who, "env.sys.grp")
		got.Group, got.Refusals = nil, nil
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.who.Email, diff)
		}
	}
	// An empty effective ACL denies everything.
	empty := mustParse(t, doc([]string{}, nil, nil, ""))
	if a, _ := empty.Check(ann, "env.sys.grp"); a.View {
		t.Errorf("empty ACL: %+v", a)
	}
}

func TestApproveSelfWithoutJoinGrantsNothing(t *testing.T) {
	t.Parallel()
	pol := mustParse(t, doc(nil, nil, []string{"user:ann@example.com allow APPROVE_SELF"}, ""))
	a, _ := pol.Check(ann, "env.sys.grp")
	if a.Join || a.SelfApprove {
		t.Errorf("APPROVE_SELF alone: %+v", a)
	}
	_, err := pol.Join(Request{Subject: ann, Entitlement: "env.sys.grp", Duration: time.Hour})
	var d *Denied
	if !errors.As(err, &d) || !strings.Contains(d.Error(), "JOIN") {
		t.Errorf("Join = %v", err)
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	fixed := "          constraints:\n            join:\n              - type: expiry\n                min: PT2H\n                max: PT2H\n"
	pol := mustParse(t, doc(nil, nil, []string{"user:ann@example.com allow JOIN,APPROVE_SELF"}, fixed))
	// min == max: no choice; omitted gives the fixed value, anything else is refused.
	d, err := pol.Join(Request{Subject: ann, Entitlement: "env.sys.grp"})
	if err != nil || d.Duration != 2*time.Hour || !d.SelfApproved {
		t.Fatalf("fixed, omitted: %+v %v", d, err)
	}
	_, err = pol.Join(Request{Subject: ann, Entitlement: "env.sys.grp", Duration: time.Hour})
	if err == nil || !strings.Contains(err.Error(), "Access expires after 2 hours") {
		t.Errorf("fixed, other duration: %v", err)
	}

	ranged := mustParse(t, doc(nil, nil, []string{"user:ann@example.com allow JOIN,APPROVE_SELF"}, ""))
	for _, tc := range []struct {
		d    time.Duration
		want string // "" = accepted
	}{
		{time.Hour, ""}, {8 * time.Hour, ""}, {3 * time.Hour, ""},
		{59 * time.Minute, "You must choose an expiry between 1 hour and 8 hours"},
		{9 * time.Hour, "You must choose an expiry between 1 hour and 8 hours"},
		{0, "no duration was given"},
	} {
		d, err := ranged.Join(Request{Subject: ann, Entitlement: "env.sys.grp", Duration: tc.d})
		switch {
		case tc.want == "" && (err != nil || d.Duration != tc.d):
			t.Errorf("%v: %+v %v", tc.d, d, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: err %v, want %q", tc.d, err, tc.want)
		}
	}

	// No expiry anywhere: joining fails, as in JIT Groups.
	none := mustParse(t, doc(nil, nil, []string{"user:ann@example.com allow JOIN,APPROVE_SELF"}, "          description: none\n"))
	if _, err := none.Join(Request{Subject: ann, Entitlement: "env.sys.grp", Duration: time.Hour}); err == nil || !strings.Contains(err.Error(), "expiry constraint") {
		t.Errorf("no expiry: %v", err)
	}
}

const constrained = `schemaVersion: 1
environment:
  name: env
  constraints:
    join:
      - type: expiry
        min: PT1H
        max: P1D
      - type: expression
        name: ticket
        displayName: "A ticket like CASE-123 is required"
        expression: "input.ticket.matches('^CASE-[0-9]+$')"
        variables:
          - {type: string, name: ticket, displayName: Ticket, min: 1, max: 20}
    approve:
      - type: approvals
        required: 2
        window: PT4H
  systems:
    - name: sys
      groups:
        - name: grp
          access:
            - {principal: "user:ann@example.com", allow: "JOIN, APPROVE_SELF"}
            - {principal: "user:ben@example.com", allow: "JOIN"}
            - {principal: "group:managers@example.com", allow: "APPROVE_OTHERS"}
          constraints:
            join:
              - type: expiry
                min: PT1H
                max: PT4H
              - type: concurrency
                max: 2
            approve:
              - type: expression
                name: internal
                displayName: "Approvers must be internal"
                expression: "subject.principals.exists(p, p == 'class:internalUsers')"
`

func TestConstraints(t *testing.T) {
	t.Parallel()
	pol := mustParse(t, constrained)
	ok := map[string]any{"ticket": "CASE-42"}
	for _, tc := range []struct {
		name string
		req  Request
		want string // substring of the refusal; "" = accepted
	}{
		{"self-approved", Request{Subject: ann, Duration: time.Hour, Inputs: ok}, ""},
		{"group expiry overrides env", Request{Subject: ann, Duration: 5 * time.Hour, Inputs: ok}, "between 1 hour and 4 hours"},
		{"failing expression names its displayName", Request{Subject: ann, Duration: time.Hour, Inputs: map[string]any{"ticket": "none"}}, "A ticket like CASE-123 is required"},
		{"input too long", Request{Subject: ann, Duration: time.Hour, Inputs: map[string]any{"ticket": strings.Repeat("x", 21)}}, "Ticket must be between 1 and 20 characters"},
		{"input of the wrong type", Request{Subject: ann, Duration: time.Hour, Inputs: map[string]any{"ticket": 7.0}}, "Ticket must be text"},
		{"undeclared input", Request{Subject: ann, Duration: time.Hour, Inputs: map[string]any{"ticket": "CASE-1", "tikcet": "x"}}, `input "tikcet" is not declared`},
		{"concurrency", Request{Subject: ann, Duration: time.Hour, Inputs: ok, Active: 2}, "At most 2 active grant(s)"},
		{"needs approval", Request{Subject: ben, Duration: time.Hour, Inputs: ok}, ""},
		{"no JOIN", Request{Subject: mallory, Duration: time.Hour, Inputs: ok}, "JOIN"},
		{"unknown entitlement", Request{Subject: ann, Duration: time.Hour, Inputs: ok, Entitlement: "env.sys.nope"}, "unknown entitlement"},
	} {
		if tc.req.Entitlement == "" {
			tc.req.Entitlement = "env.sys.grp"
		}
		d, err := pol.Join(tc.req)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %+v, %v; want a refusal with %q", tc.name, d, err, tc.want)
		}
	}

	d, err := pol.Join(Request{Subject: ben, Entitlement: "env.sys.grp", Duration: 2 * time.Hour, Inputs: ok})
	if err != nil {
		t.Fatal(err)
	}
	if d.Group.ID() != "env.sys.grp" {
		t.Errorf("group = %s", d.Group.ID())
	}
	d.Group = nil
	want := &Decision{
		Duration: 2 * time.Hour, Inputs: map[string]any{"ticket": "CASE-42"},
		// Ann may join without approval but holds no APPROVE_OTHERS.
		Approvers: []Principal{{GroupPrincipal, "managers@example.com"}},
		Approvals: Approvals{Required: 2, Window: 4 * time.Hour},
	}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("decision for ben (-want +got):\n%s", diff)
	}
}

func TestApprove(t *testing.T) {
	t.Parallel()
	pol := mustParse(t, constrained)
	inputs := map[string]any{"ticket": "CASE-7"}
	externalManager := NewSubject("ext@partner.example", []string{"managers@example.com"}, false)
	for _, tc := range []struct {
		name     string
		approver Subject
		want     string
	}{
		{"manager approves ben", managers, ""},
		{"ben cannot approve himself", ben, "cannot approve your own request"},
		{"ann may approve others? no: she lacks APPROVE_OTHERS", ann, "APPROVE_OTHERS"},
		{"approve constraint fails for an external manager", externalManager, "Approvers must be internal"},
		{"outsider", mallory, "APPROVE_OTHERS"},
	} {
		_, err := pol.Approve(Approval{Approver: tc.approver, Requester: ben, Entitlement: "env.sys.grp", Duration: time.Hour, Inputs: inputs})
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}

	// The approver lost the right: re-checked against the new policy.
	revoked := mustParse(t, strings.Replace(constrained, `allow: "APPROVE_OTHERS"`, `allow: "VIEW"`, 1))
	if _, err := revoked.Approve(Approval{Approver: managers, Requester: ben, Entitlement: "env.sys.grp", Duration: time.Hour, Inputs: inputs}); err == nil {
		t.Error("approval by a manager who lost APPROVE_OTHERS was accepted")
	}
	// The request no longer satisfies a join constraint under the new policy.
	stricter := mustParse(t, strings.Replace(constrained, "max: PT4H", "max: PT2H", 1))
	if _, err := stricter.Approve(Approval{Approver: managers, Requester: ben, Entitlement: "env.sys.grp", Duration: 3 * time.Hour, Inputs: inputs}); err == nil {
		t.Error("approval of a duration the policy no longer allows was accepted")
	}
}

func TestNoApprovers(t *testing.T) {
	t.Parallel()
	pol := mustParse(t, doc(nil, nil, []string{"user:ben@example.com allow JOIN,APPROVE_OTHERS"}, ""))
	// Ben is the only one with APPROVE_OTHERS, and requesters never approve themselves.
	_, err := pol.Join(Request{Subject: ben, Entitlement: "env.sys.grp", Duration: time.Hour})
	if err == nil || !strings.Contains(err.Error(), "no principals that could approve") {
		t.Errorf("Join = %v", err)
	}
}

// Evaluate lists what the subject may act on (JOIN or APPROVE_OTHERS),
// Visible everything they may view; with VIEW open to every IAP user
// (JIT Groups' default when the environment omits access) the two differ
// for anyone the group's ACL does not name.
func TestEvaluateAndVisible(t *testing.T) {
	t.Parallel()
	summary := func(as []Access) []string {
		var out []string
		for _, a := range as {
			out = append(out, fmt.Sprintf("%s view=%v join=%v self=%v approve=%v", a.Group.ID(), a.View, a.Join, a.SelfApprove, a.ApproveOthers))
		}
		return out
	}
	const (
		benJoins     = "env.sys.grp view=true join=true self=false approve=false"
		mayView      = "env.sys.grp view=true join=false self=false approve=false"
		managersJoin = "env.sys.grp view=true join=false self=false approve=true"
	)
	defaultOpen := mustParse(t, constrained)
	private := mustParse(t, strings.Replace(constrained, "  name: env\n", "  name: env\n  access: []\n", 1))
	// JOIN open to every internal user at the environment: every group is
	// one each of them may act on, wherever they are named.
	openJoin := mustParse(t, doc([]string{"class:internalUsers allow JOIN"}, nil, []string{"user:ann@example.com deny JOIN"}, ""))
	for _, tc := range []struct {
		name          string
		pol           *Policy
		who           Subject
		evaluate, see []string // nil: none
	}{
		{"named in the group's ACL", defaultOpen, ben, []string{benJoins}, []string{benJoins}},
		{"an approver", defaultOpen, managers, []string{managersJoin}, []string{managersJoin}},
		{"VIEW open to every IAP user", defaultOpen, mallory, nil, []string{mayView}},
		{"an empty environment ACL", private, mallory, nil, nil},
		{"JOIN open to internal users", openJoin, ben, []string{benJoins}, []string{benJoins}},
		{"JOIN open, denied by name", openJoin, ann, nil, nil},
		{"JOIN open, not to externals", openJoin, mallory, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.evaluate, summary(tc.pol.Evaluate(tc.who))); diff != "" {
				t.Errorf("Evaluate (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.see, summary(slices.Collect(tc.pol.Visible(tc.who)))); diff != "" {
				t.Errorf("Visible (-want +got):\n%s", diff)
			}
		})
	}
}

// REQUEST_ON_BEHALF is ours: only serviceAccount: principals may hold it,
// they may hold nothing else, it inherits like any permission, and a deny
// wins over it.
func TestRequestOnBehalf(t *testing.T) {
	t.Parallel()
	const robot = "serviceAccount:incident-bot@ops.iam.gserviceaccount.com"
	pol := mustParse(t, doc(
		[]string{robot + " allow REQUEST_ON_BEHALF"},
		nil,
		[]string{"user:ann@example.com allow JOIN,APPROVE_SELF"}, ""))
	if !pol.MayRequestOnBehalf("incident-bot@ops.iam.gserviceaccount.com", "env.sys.grp") {
		t.Error("trusted bot refused")
	}
	if pol.MayRequestOnBehalf("other-bot@ops.iam.gserviceaccount.com", "env.sys.grp") {
		t.Error("untrusted bot accepted")
	}
	if pol.MayRequestOnBehalf("incident-bot@ops.iam.gserviceaccount.com", "env.sys.nope") {
		t.Error("unknown entitlement accepted")
	}
	denied := mustParse(t, doc(
		[]string{robot + " allow REQUEST_ON_BEHALF"}, nil,
		[]string{robot + " deny REQUEST_ON_BEHALF", "user:ann@example.com allow JOIN"}, ""))
	if denied.MayRequestOnBehalf("incident-bot@ops.iam.gserviceaccount.com", "env.sys.grp") {
		t.Error("deny did not win")
	}
	// Holding REQUEST_ON_BEHALF gives a bot no access as a user.
	if a := pol.Evaluate(NewSubject("incident-bot@ops.iam.gserviceaccount.com", nil, false)); len(a) != 0 {
		t.Errorf("bot as a user sees %v", a)
	}

	for name, tc := range map[string]struct {
		line string
		code Code
	}{
		"service account with JOIN":       {robot + " allow JOIN", ACLInvalidPrincipal},
		"service account with more":       {robot + " allow REQUEST_ON_BEHALF,JOIN", ACLInvalidPrincipal},
		"user with REQUEST_ON_BEHALF":     {"user:ann@example.com allow REQUEST_ON_BEHALF", ACLInvalidPermission},
		"group with REQUEST_ON_BEHALF":    {"group:sre@example.com allow JOIN,REQUEST_ON_BEHALF", ACLInvalidPermission},
		"malformed service account email": {"serviceAccount:not-an-email allow REQUEST_ON_BEHALF", ACLInvalidPrincipal},
	} {
		issues := Lint([]byte(doc(nil, nil, []string{tc.line}, "")))
		if len(issues) != 1 || issues[0].Code != tc.code {
			t.Errorf("%s: %v, want one %s", name, issues, tc.code)
		}
	}
}
