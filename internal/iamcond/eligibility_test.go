package iamcond

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEligibility(t *testing.T) {
	t.Parallel()
	type result struct {
		Marker            Marker
		ResourceCondition string
		Err               error
	}
	for _, tc := range []struct {
		name       string
		expression string
		want       result
	}{
		// docs/jit-access.md §1.1 (v1:D/index.md, v1:D/multi-party-approval.md):
		// the two marker conditions.
		{"JIT marker", "has({}.jitAccessConstraint)", result{JIT, "", nil}},
		{"MPA marker", "has({}.multiPartyApprovalConstraint)", result{MPA, "", nil}},
		// §1.1: matching is case-insensitive and tolerant to whitespace
		// incl. \r\n\t.
		{"odd case and spacing", "HAS( {}.JitAccessConstraint )", result{JIT, "", nil}},
		{"tabs and CRLF", "\thas(\r\n{} . multipartyapprovalCONSTRAINT\t)\r\n", result{MPA, "", nil}},
		// §1.2 (v1:T/core/catalog/project/TestProjectRoleCondition.java):
		// the remaining clauses, AND-ed and canonically re-formatted.
		{"resource condition canonicalised", "a>b&&b<c&&HAS({}.JitacceSSConstraint)  ", result{JIT, "a > b && b < c", nil}},
		// §1.1: "HAS({}.JitacceSSConstraint) || 1<2" is not eligible.
		{"top-level or", "HAS({}.JitacceSSConstraint) || 1<2", result{None, "", ErrNotConjunction}},
		{"top-level or after a resource clause", "has({}.jitAccessConstraint) && a || b", result{None, "", ErrNotConjunction}},
		// Not in the facts: a top-level ternary binds more loosely than &&
		// too, so the marker is not a conjunct.
		{"top-level ternary", "has({}.jitAccessConstraint) && a ? true : false", result{None, "", ErrNotConjunction}},
		// §1.2 (v1:D/resource-conditions.md): the documented example; the
		// clause order is irrelevant; // comment lines are ignored.
		{"documented resource condition", `has({}.jitAccessConstraint) && resource.name == "projects/p/secrets/s"`,
			result{JIT, `resource.name == "projects/p/secrets/s"`, nil}},
		{"marker last", `resource.name == 'projects/p/secrets/s' && has({}.jitAccessConstraint)`,
			result{JIT, `resource.name == "projects/p/secrets/s"`, nil}},
		{"comment lines", "// Eligible for JIT access\nhas({}.jitAccessConstraint) &&\n  // only this secret\n  resource.name == 'x'",
			result{JIT, `resource.name == "x"`, nil}},
		{"&& inside quotes", `has({}.jitAccessConstraint) && resource.name == "a && b"`, result{JIT, `resource.name == "a && b"`, nil}},
		{"|| in parentheses", `has({}.multiPartyApprovalConstraint) && (resource.name == "a" || (resource.type == "t" && resource.name == "b"))`,
			result{MPA, `resource.name == "a" || resource.type == "t" && resource.name == "b"`, nil}},
		{"parentheses kept where they matter", "has({}.jitAccessConstraint) && (a || b) && c", result{JIT, "(a || b) && c", nil}},
		{"macros unparse as written", `has({}.jitAccessConstraint) && ["a"].exists(x, x == resource.type) && has(r.f)`,
			result{JIT, `["a"].exists(x, x == resource.type) && has(r.f)`, nil}},
		{"IAM functions", `has({}.jitAccessConstraint) && resource.name.extract("projects/{p}/")=="p1" && resource.matchTag('1/env','prod')`,
			result{JIT, `resource.name.extract("projects/{p}/") == "p1" && resource.matchTag("1/env", "prod")`, nil}},
		// §1.1: if both apply, only the JIT entitlement is kept.
		{"both markers", "has({}.multiPartyApprovalConstraint) && has({}.jitAccessConstraint) && a", result{JIT, "a", nil}},
		{"marker twice", "has({}.jitAccessConstraint) && has({}.jitAccessConstraint)", result{JIT, "", nil}},
		// §1.1 (#228): a misspelled marker silently fails.
		{"misspelled marker", "has({}.jitAccessContraint)", result{None, "", ErrNoMarker}},
		{"marker in parentheses is not a clause", "(has({}.jitAccessConstraint))", result{None, "", ErrNoMarker}},
		{"marker inside an or", "(has({}.jitAccessConstraint) || a) && b", result{None, "", ErrNoMarker}},
		{"marker in a string", `"has({}.jitAccessConstraint)" == s`, result{None, "", ErrNoMarker}},
		{"marker in a comment", "// has({}.jitAccessConstraint)\ntrue", result{None, "", ErrNoMarker}},
		{"non-ASCII look-alike", "has({}.j\u0130tAccessConstraint)", result{None, "", ErrNoMarker}},
		{"empty", "", result{None, "", ErrNoMarker}},
		{"plain condition", `request.time < timestamp("2030-01-01T00:00:00Z")`, result{None, "", ErrNoMarker}},
		{"unparsable resource condition", "has({}.jitAccessConstraint) && a >", result{None, "", ErrInvalidResourceCondition}},
		// Wrapping the fragment in parentheses would make it parse.
		{"fragment clause", "has({}.jitAccessConstraint) && a) + (b", result{None, "", ErrInvalidResourceCondition}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, rc, err := EligibilityErr(tc.expression)
			got := result{m, rc, err}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b error) bool {
				return a == nil && b == nil || a != nil && b != nil && (errors.Is(a, b) || errors.Is(b, a))
			})); diff != "" {
				t.Errorf("EligibilityErr(%q) mismatch (-want +got):\n%s", tc.expression, diff)
			}
			m2, rc2, ok := Eligibility(tc.expression)
			if want := (result{m, rc, nil}); ok != (err == nil) || m2 != want.Marker || rc2 != want.ResourceCondition {
				t.Errorf("Eligibility(%q) = %v, %q, %v; EligibilityErr gave %v, %q, %v", tc.expression, m2, rc2, ok, m, rc, err)
			}
		})
	}
}

// The canonical resource condition is a fixed point: it is what
// identifies an entitlement (docs/jit-access.md §1.1, entitlement ID), so
// formatting it again must not change it.
func TestResourceConditionIsCanonical(t *testing.T) {
	t.Parallel()
	for _, rc := range []string{
		"a>b&&b<c",
		"resource.name=='x' || resource.name=='y'",
		`r"\d" == s && 1.50 == f && b"\x00" == b`,
		"(a ? b : c) && !d",
		"m.`a-b` == 1",
	} {
		_, first, ok := Eligibility("has({}.jitAccessConstraint) && (" + rc + ")")
		if !ok {
			t.Fatalf("Eligibility(... && %q) not eligible", rc)
		}
		_, second, ok := Eligibility("has({}.jitAccessConstraint) && (" + first + ")")
		if !ok || second != first {
			t.Errorf("canonical form of %q: %q, then %q (ok %v)", rc, first, second, ok)
		}
	}
}

// docs/jit-access.md §1.4: activationType is JIT or MPA.
func TestMarkerString(t *testing.T) {
	t.Parallel()
	got := []string{None.String(), JIT.String(), MPA.String(), Marker(7).String()}
	if diff := cmp.Diff([]string{"None", "JIT", "MPA", "Marker(7)"}, got); diff != "" {
		t.Errorf("Marker.String mismatch (-want +got):\n%s", diff)
	}
}
