package iamcond

import "strings"

// MaxLogicalOperators is IAM's quota on logical operators (&&, ||, !) in
// one binding's condition expression (docs/google-cloud.md §1, Limits).
const MaxLogicalOperators = 12

// SplitAnd splits a condition into its top-level && clauses, the way JIT
// Access v1 does before looking for eligibility markers (docs/jit-access.md
// §1.1). Comments (// to the end of the line, outside string literals) are
// removed first; an && inside parentheses, brackets, braces, string
// literals or `quoted identifiers` is not a split point. Clauses are
// trimmed and empty ones dropped, so the result is nil for an empty
// expression.
//
// SplitAnd does not look at ||: with a top-level || the clauses are not
// conjuncts of the expression, see HasTopLevelOr.
func SplitAnd(expression string) []string {
	s := stripComments(expression)
	var clauses []string
	add := func(clause string) {
		if clause = strings.TrimSpace(clause); clause != "" {
			clauses = append(clauses, clause)
		}
	}
	start := 0
	walkCode(s, func(i, depth int) int {
		if depth == 0 && isPair(s, i, '&') {
			add(s[start:i])
			start = i + 2
			return 1
		}
		return 0
	})
	add(s[start:])
	return clauses
}

// HasTopLevelOr reports whether the expression has a || outside brackets,
// string literals and comments: then it is not a conjunction of its
// SplitAnd clauses.
func HasTopLevelOr(expression string) bool {
	s := stripComments(expression)
	found := false
	walkCode(s, func(i, depth int) int {
		if depth == 0 && isPair(s, i, '|') {
			found = true
		}
		return 0
	})
	return found
}

// isConjunction reports whether the expression is the conjunction of its
// SplitAnd clauses: not so with a top-level || or a top-level ternary
// (x && y ? a : b), whose operators bind more loosely than &&.
func isConjunction(expression string) bool {
	s := stripComments(expression)
	ok := true
	walkCode(s, func(i, depth int) int {
		if depth == 0 && (isPair(s, i, '|') || s[i] == '?') {
			ok = false
		}
		return 0
	})
	return ok
}

// CountLogicalOperators counts the &&, || and ! operators an expression's
// author wrote (not those in string literals or comments), to enforce
// MaxLogicalOperators. It works on the text because macros such as
// exists() expand into logical operators nobody wrote.
func CountLogicalOperators(expression string) int {
	s := stripComments(expression)
	n := 0
	walkCode(s, func(i, _ int) int {
		switch {
		case isPair(s, i, '&'), isPair(s, i, '|'):
			n++
			return 1
		case s[i] == '!' && (i+1 >= len(s) || s[i+1] != '='):
			n++
		}
		return 0
	})
	return n
}

// isPair reports whether s[i:] starts with ch twice.
func isPair(s string, i int, ch byte) bool {
	return s[i] == ch && i+1 < len(s) && s[i+1] == ch
}
