package iamcond

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	t2040     = time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)
	t2040Plus = t2040.Add(5 * time.Minute)
)

// docs/jit-access.md §4 (v1:J/cel/TemporaryIamCondition.java,
// ProjectRoleActivator.java): the exact expressions, UTC with seconds and
// Z, the window and the resource condition each parenthesised and AND-ed.
func TestActivation(t *testing.T) {
	t.Parallel()
	berlin := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		name       string
		start, end time.Time
		rc         string
		want       string
	}{
		{"no resource condition", t2040, t2040Plus, "",
			`(request.time >= timestamp("2040-01-01T00:00:00Z") && request.time < timestamp("2040-01-01T00:05:00Z"))`},
		{"facts test string", t2040, t2040Plus, "resource.name=='x' || resource.name=='y'",
			`((request.time >= timestamp("2040-01-01T00:00:00Z") && request.time < timestamp("2040-01-01T00:05:00Z"))) && (resource.name=='x' || resource.name=='y')`},
		{"other zone, sub-seconds truncated", time.Date(2040, 1, 1, 1, 0, 0, 999_999_999, berlin), time.Date(2040, 1, 1, 1, 5, 0, 500, berlin), " ",
			`(request.time >= timestamp("2040-01-01T00:00:00Z") && request.time < timestamp("2040-01-01T00:05:00Z"))`},
		{"comment in resource condition", t2040, t2040Plus, "a // only a\n",
			`((request.time >= timestamp("2040-01-01T00:00:00Z") && request.time < timestamp("2040-01-01T00:05:00Z"))) && (a)`},
	} {
		if got := Activation(tc.start, tc.end, tc.rc); got != tc.want {
			t.Errorf("%s: Activation() =\n%s\nwant\n%s", tc.name, got, tc.want)
		}
	}
}

func TestParseActivation(t *testing.T) {
	t.Parallel()
	type result struct {
		Start, End        time.Time
		ResourceCondition string
		OK                bool
	}
	window := `request.time >= timestamp("2040-01-01T00:00:00Z") && request.time < timestamp("2040-01-01T00:05:00Z")`
	ok := func(rc string) result { return result{t2040, t2040Plus, rc, true} }
	var fail result
	for _, tc := range []struct {
		name       string
		expression string
		want       result
	}{
		// docs/jit-access.md §4: the two exact expressions.
		{"facts, no resource condition", "(" + window + ")", ok("")},
		{"facts test string", "((" + window + ")) && (resource.name=='x' || resource.name=='y')",
			ok(`resource.name == "x" || resource.name == "y"`)},
		// §4 (v1:T/cel/TestTemporaryIamCondition.java): any number of
		// wrapping parentheses, surrounding whitespace.
		{"many parentheses and whitespace", " \r\n ((( (" + window + ") )))\t", ok("")},
		{"resource condition first", "a && ((" + window + "))", ok("a")},
		{"resource condition with &&", "((" + window + ")) && (a && b) && c", ok("a && b && c")},
		{"token spacing and single quotes", `(request.time>=timestamp( '2040-01-01T00:00:00Z' )&&request.time  <  timestamp('2040-01-01T00:05:00Z'))`, ok("")},
		{"line breaks inside", "(request.time >= timestamp(\"2040-01-01T00:00:00Z\") &&\n request.time < timestamp(\"2040-01-01T00:05:00Z\"))", ok("")},
		{"comments", "// JIT\n(" + window + ") // window\n&& a", ok("a")},
		{"fractional seconds and offset", `(request.time >= timestamp("2040-01-01T01:00:00.000+01:00") && request.time < timestamp("2040-01-01T00:05:00Z"))`, ok("")},
		// Not in the facts: the window without its own parentheses, as
		// two top-level clauses.
		{"unparenthesised window", window, ok("")},
		{"unparenthesised window and more", window + " && a", ok("a")},
		// §4: anything else appended inside the same clause breaks
		// recognition.
		{"extra inside the clause", "(" + window + " && a)", fail},
		{"extra inside, prefixed", "(a && " + window + ")", fail},
		{"wrapping function", "f(" + window + ")", fail},
		{"separately parenthesised comparisons", `(request.time >= timestamp("2040-01-01T00:00:00Z")) && (request.time < timestamp("2040-01-01T00:05:00Z"))`, fail},
		{"wrong operator", `(request.time > timestamp("2040-01-01T00:00:00Z") && request.time < timestamp("2040-01-01T00:05:00Z"))`, fail},
		{"swapped comparisons", `(request.time < timestamp("2040-01-01T00:05:00Z") && request.time >= timestamp("2040-01-01T00:00:00Z"))`, fail},
		{"bad timestamp", `(request.time >= timestamp("tomorrow") && request.time < timestamp("2040-01-01T00:05:00Z"))`, fail},
		// docs/google-cloud.md §1: the canonical "expirable access" condition is not a
		// JIT window.
		{"expiry only", `request.time < timestamp('2020-10-01T00:00:00.000Z')`, fail},
		{"top-level or", "(" + window + ") || a", fail},
		{"two windows", "(" + window + ") && (" + window + ")", fail},
		{"unparsable resource condition", "(" + window + ") && a >", fail},
		{"empty", "", fail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start, end, rc, ok := ParseActivation(tc.expression)
			if diff := cmp.Diff(tc.want, result{start, end, rc, ok}); diff != "" {
				t.Errorf("ParseActivation(%q) mismatch (-want +got):\n%s", tc.expression, diff)
			}
		})
	}
}

// docs/jit-access.md §4: what Activation writes, ParseActivation reads back;
// a resource condition in the canonical form Eligibility returns (§1.2)
// comes back unchanged.
func TestActivationRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		start, end time.Time
		rc         string
	}{
		{t2040, t2040Plus, ""},
		{t2040, t2040.Add(2 * time.Hour), `resource.name == "x" || resource.name == "y"`},
		{time.Date(2025, 2, 28, 23, 59, 59, 0, time.UTC), time.Date(2025, 3, 1, 0, 0, 59, 0, time.UTC), `a > b && b < c`},
		{t2040, t2040Plus, `resource.name.startsWith("projects/p/secrets/") && (a ? b : c)`},
	} {
		expr := Activation(tc.start, tc.end, tc.rc)
		start, end, rc, ok := ParseActivation(expr)
		if !ok || !start.Equal(tc.start) || !end.Equal(tc.end) || rc != tc.rc {
			t.Errorf("ParseActivation(%q) = %v, %v, %q, %v; want %v, %v, %q, true", expr, start, end, rc, ok, tc.start, tc.end, tc.rc)
		}
		if !HasTemporaryClause(expr) {
			t.Errorf("HasTemporaryClause(%q) = false", expr)
		}
	}
}

// docs/jit-access.md §4: earlier bindings with any temporary clause are
// purged, whatever else the condition holds; others are left alone.
func TestHasTemporaryClause(t *testing.T) {
	t.Parallel()
	window := `(request.time >= timestamp("2040-01-01T00:00:00Z") && request.time < timestamp("2040-01-01T00:05:00Z"))`
	for _, tc := range []struct {
		expression string
		want       bool
	}{
		{window, true},
		{window + " && " + window, true},
		{"a && " + window + " && b", true},
		{window + " || a", false},
		{`request.time < timestamp("2040-01-01T00:05:00Z")`, false},
		{"has({}.jitAccessConstraint)", false},
		{"", false},
	} {
		if got := HasTemporaryClause(tc.expression); got != tc.want {
			t.Errorf("HasTemporaryClause(%q) = %v, want %v", tc.expression, got, tc.want)
		}
	}
}

// docs/jit-access.md §4: "Self-approved, justification: <justification>" or
// "Approved by <approver-email>, justification: <justification>"; several
// approvers are listed comma-separated (not in the facts: v1 has one).
func TestDescription(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		approvers     []string
		justification string
		want          string
	}{
		{nil, "CASE-1", `Self-approved, justification: "CASE-1"`},
		{[]string{}, "CASE-1", `Self-approved, justification: "CASE-1"`},
		{[]string{"a@x"}, "CASE-1", `Approved by a@x, justification: "CASE-1"`},
		{[]string{"a@x", "b@y"}, "CASE-1", `Approved by a@x, b@y, justification: "CASE-1"`},
		// User text cannot close the quote and speak as the system.
		{nil, `x", Approved by ciso@example.com, justification: "y`,
			`Self-approved, justification: "x\", Approved by ciso@example.com, justification: \"y"`},
		{nil, "x\nApproved by ciso@example.com", `Self-approved, justification: "x\nApproved by ciso@example.com"`},
	} {
		if got := Description(tc.approvers, tc.justification); got != tc.want {
			t.Errorf("Description(%q, %q) = %q, want %q", tc.approvers, tc.justification, got, tc.want)
		}
	}
}

func TestActivationTitle(t *testing.T) {
	t.Parallel()
	// docs/jit-access.md §4: exact title, used to recognise activations.
	if ActivationTitle != "JIT access activation" {
		t.Errorf("ActivationTitle = %q", ActivationTitle)
	}
}
