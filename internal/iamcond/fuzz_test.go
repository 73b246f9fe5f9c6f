package iamcond

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Fuzz targets; run each for a while with, e.g.:
//
//	go test ./internal/iamcond -run '^$' -fuzz '^FuzzSplitAnd$' -fuzztime 60s
//	go test ./internal/iamcond -run '^$' -fuzz '^FuzzEligibility$' -fuzztime 60s
//	go test ./internal/iamcond -run '^$' -fuzz '^FuzzParseActivation$' -fuzztime 60s
//
// Without -fuzz, `go test` runs only the seeds below (and any corpus under
// testdata/fuzz).

var fuzzSeeds = []string{
	"",
	"a && b",
	"a>b&&b<c&&HAS({}.JitacceSSConstraint)  ",
	"HAS({}.JitacceSSConstraint) || 1<2",
	"HAS( {}.JitAccessConstraint )",
	"\thas(\r\n{}.multiPartyApprovalConstraint)\r\n && (x || y)",
	"// comment && x\nhas({}.jitAccessConstraint) && resource.name == 'a && b' // c",
	`has({}.jitAccessConstraint) && "a \" && b" == s && r"\" == t && """x && "y""" == z`,
	"has({}.jitAccessConstraint) && m.`a//b` == 1 && [a && b] == c && {k: a}.k",
	"has({}.jitAccessConstraint) && a ? b : c",
	`((request.time >= timestamp("2040-01-01T00:00:00Z") && request.time < timestamp("2040-01-01T00:05:00Z"))) && (resource.name=='x' || resource.name=='y')`,
	"a) && (b &&& c || 'd",
}

// SplitAnd never panics; its clauses are trimmed and non-empty; and for a
// conjunction (no clause with a top-level ||) joining the clauses with
// " && " and splitting again gives the same clauses.
func FuzzSplitAnd(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expression string) {
		clauses := SplitAnd(expression)
		for _, c := range clauses {
			if c == "" || c != strings.TrimSpace(c) {
				t.Fatalf("SplitAnd(%q): clause %q is empty or not trimmed", expression, c)
			}
			if HasTopLevelOr(c) {
				return
			}
		}
		again := SplitAnd(strings.Join(clauses, " && "))
		if diff := cmp.Diff(clauses, again); diff != "" {
			t.Fatalf("SplitAnd(%q) then joined and split again (-first +second):\n%s", expression, diff)
		}
	})
}

// Eligibility never panics; an eligible condition has a marker; and its
// resource condition is canonical: putting it back behind a marker gives
// it again.
func FuzzEligibility(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expression string) {
		m, rc, ok := Eligibility(expression)
		if !ok {
			if m != None || rc != "" {
				t.Fatalf("Eligibility(%q) = %v, %q, false; want None, \"\"", expression, m, rc)
			}
			return
		}
		if m != JIT && m != MPA {
			t.Fatalf("Eligibility(%q) = %v, %q, true; want a marker", expression, m, rc)
		}
		if rc == "" {
			return
		}
		_, again, ok := Eligibility("has({}.jitAccessConstraint) && (" + rc + ")")
		if !ok || again != rc {
			t.Fatalf("Eligibility(%q): resource condition %q formats again as %q (ok %v)", expression, rc, again, ok)
		}
	})
}

// ParseActivation never panics, and what it recognises HasTemporaryClause
// recognises too.
func FuzzParseActivation(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expression string) {
		if _, _, _, ok := ParseActivation(expression); ok && !HasTemporaryClause(expression) {
			t.Fatalf("ParseActivation(%q) recognised, HasTemporaryClause did not", expression)
		}
	})
}
