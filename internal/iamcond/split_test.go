package iamcond

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// docs/jit-access.md §1.1 (v1:J/cel/IamCondition.java splitAnd): a condition
// is split into top-level && clauses; lines starting with // are removed;
// && inside parentheses or quotes is not a split point. §1.2: comment lines
// are ignored.
func TestSplitAnd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		expression string
		want       []string
	}{
		{"empty", "", nil},
		{"blank", " \t\r\n", nil},
		{"single", "a", []string{"a"}},
		{"two", "a && b", []string{"a", "b"}},
		{"no spaces, trailing blanks", "a>b&&b<c&&HAS({}.JitacceSSConstraint)  ", []string{"a>b", "b<c", "HAS({}.JitacceSSConstraint)"}},
		{"empty clauses dropped", "&& a && && b &&", []string{"a", "b"}},
		{"CRLF and tabs", "a\r\n&&\tb\r\n", []string{"a", "b"}},
		{"parentheses", "(a && b) && c", []string{"(a && b)", "c"}},
		{"nested parentheses", "((a && (b && c)) || d) && e", []string{"((a && (b && c)) || d)", "e"}},
		{"brackets", "[a && b, c] == l && d", []string{"[a && b, c] == l", "d"}},
		{"braces", `{"k": a && b}.k && c`, []string{`{"k": a && b}.k`, "c"}},
		{"double quotes", `"x && y" == s && t`, []string{`"x && y" == s`, "t"}},
		{"single quotes", `'x && y' == s && t`, []string{`'x && y' == s`, "t"}},
		{"escaped quote", `"a \" && b" == s && t`, []string{`"a \" && b" == s`, "t"}},
		{"escaped backslash", `"a\\" == s && t`, []string{`"a\\" == s`, "t"}},
		{"other quote inside", `"it's && ok" == s && t`, []string{`"it's && ok" == s`, "t"}},
		{"raw string ends at backslash", `r"\" == s && t`, []string{`r"\" == s`, "t"}},
		{"raw bytes", `bR'\' == s && t`, []string{`bR'\' == s`, "t"}},
		{"identifier ending in r is not a raw prefix", `f(bar, "\" && x") && t`, []string{`f(bar, "\" && x")`, "t"}},
		{"triple quotes", `"""a " && b""" == s && t`, []string{`"""a " && b""" == s`, "t"}},
		{"triple single quotes", `'''a
' && b''' == s && t`, []string{"'''a\n' && b''' == s", "t"}},
		{"quoted identifier", "m.`a//b` && c", []string{"m.`a//b`", "c"}},
		{"comment lines", "// eligible && more\na &&\n  // only this && that\nb", []string{"a", "b"}},
		{"comment line with CRLF", "// c && d\r\na && b", []string{"a", "b"}},
		{"trailing comment", "a && b // && c", []string{"a", "b"}},
		{"comment with unbalanced parenthesis", "a && ( // )\nb) && c", []string{"a", "( \nb)", "c"}},
		{"slashes in a string", `s == "http://x" && b`, []string{`s == "http://x"`, "b"}},
		{"single ampersand", "a & b && c", []string{"a & b", "c"}},
		{"triple ampersand", "a &&& b", []string{"a", "& b"}},
		{"top-level or is not split", "a || b && c", []string{"a || b", "c"}},
		{"unterminated string", `a && "b && c`, []string{"a", `"b && c`}},
		{"unclosed parenthesis", "a && (b && c", []string{"a", "(b && c"}},
		{"stray closing parenthesis", "a) && b", []string{"a)", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, SplitAnd(tc.expression)); diff != "" {
				t.Errorf("SplitAnd(%q) mismatch (-want +got):\n%s", tc.expression, diff)
			}
		})
	}
}

// docs/jit-access.md §1.1: any || at top level makes a condition not
// eligible (test "HAS({}.JitacceSSConstraint) || 1<2"); a || in
// parentheses or quotes does not count.
func TestHasTopLevelOr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expression string
		want       bool
	}{
		{"HAS({}.JitacceSSConstraint) || 1<2", true},
		{"a && b || c", true},
		{"a||b", true},
		{"(a || b) && c", false},
		{"[a || b] == l", false},
		{`"||" == s && '||' == t`, false},
		{"a // || b", false},
		{"a | b", false},
		{"a ? b : c", false},
		{"", false},
	} {
		if got := HasTopLevelOr(tc.expression); got != tc.want {
			t.Errorf("HasTopLevelOr(%q) = %v, want %v", tc.expression, got, tc.want)
		}
	}
}

// docs/google-cloud.md §1, Limits: at most 12 logical operators (&&, ||, !) in one
// binding's condition; operators inside string literals (and comments)
// are text, not operators.
func TestCountLogicalOperators(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expression string
		want       int
	}{
		{`true`, 0},
		{`a && b || !c`, 3},
		{`a != b`, 0},
		{`!(a) && !!b`, 4},
		{`"&&" == x || '||' == y`, 1},
		{`"a \" && b" == x`, 0},
		{`"""&& || !""" == x && y`, 1},
		{`r"\" && x`, 1},
		{"a && b // || !c", 1},
		{"a &&& b", 1},
		{"!", 1},
	} {
		if got := CountLogicalOperators(tc.expression); got != tc.want {
			t.Errorf("CountLogicalOperators(%q) = %d, want %d", tc.expression, got, tc.want)
		}
	}
}
