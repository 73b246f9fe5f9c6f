package iamcond

import (
	"strconv"
	"strings"
	"time"

	"github.com/jitpipeline/jit/internal/lazyregexp"
)

// ActivationTitle is the condition title of every temporary binding the
// pipeline writes. JIT Access v1 uses the same title and recognises its
// activations by it (docs/jit-access.md §4), so migrated tooling keeps
// working.
const ActivationTitle = "JIT access activation"

// timestampLayout is UTC with whole seconds and a Z, as JIT Access writes
// it (docs/jit-access.md §4).
const timestampLayout = "2006-01-02T15:04:05Z"

// Activation returns the condition expression of a temporary binding that
// is valid from start (inclusive) to end (exclusive), both truncated to
// whole seconds in UTC:
//
//	(request.time >= timestamp("START") && request.time < timestamp("END"))
//
// and, with a resource condition R,
//
//	((request.time >= timestamp("START") && request.time < timestamp("END"))) && (R)
//
// (docs/jit-access.md §4, docs/architecture.md §3). R is used as given, apart from
// comments, which are removed: a trailing // comment would otherwise
// swallow the closing parenthesis.
func Activation(start, end time.Time, resourceCondition string) string {
	window := `(request.time >= timestamp("` + start.UTC().Format(timestampLayout) +
		`") && request.time < timestamp("` + end.UTC().Format(timestampLayout) + `"))`
	rc := strings.TrimSpace(stripComments(resourceCondition))
	if rc == "" {
		return window
	}
	return "(" + window + ") && (" + rc + ")"
}

// temporaryClause is the body of a temporary clause, once wrapping
// parentheses and surrounding whitespace are gone. Whitespace between
// tokens and either quote style are tolerated; anything else is not
// (docs/jit-access.md §4: "anything else appended inside the same clause
// breaks recognition").
var temporaryClause = lazyregexp.New(`^request\.time\s*>=\s*timestamp\(\s*(?:"([^"\\]*)"|'([^'\\]*)')\s*\)` +
	`\s*&&\s*` +
	`request\.time\s*<\s*timestamp\(\s*(?:"([^"\\]*)"|'([^'\\]*)')\s*\)$`)

// ParseActivation recognises a temporary binding's condition: among its
// top-level && clauses exactly one must be a temporary clause
// (request.time >= timestamp(START) && request.time < timestamp(END), in
// any number of parentheses, or without parentheses as two adjacent
// top-level clauses); the other clauses form the resource
// condition in canonical form (as Eligibility returns it), "" if there
// are none. Timestamps are RFC 3339 and returned in UTC.
//
// ok is false for a top-level || or ?:, no or several temporary clauses, a bad
// timestamp, or a resource condition that does not parse. The caller
// checks the title (ActivationTitle) separately. END before START is still
// recognised: such a binding is junk to purge, not something else.
func ParseActivation(expression string) (start, end time.Time, resourceCondition string, ok bool) {
	if !isConjunction(expression) {
		return time.Time{}, time.Time{}, "", false
	}
	found := false
	var rest []string
	clauses := SplitAnd(expression)
	for i := 0; i < len(clauses); i++ {
		s, e, n := temporaryAt(clauses, i)
		if n == 0 {
			rest = append(rest, clauses[i])
			continue
		}
		if found {
			return time.Time{}, time.Time{}, "", false
		}
		start, end, found = s, e, true
		i += n - 1
	}
	if !found {
		return time.Time{}, time.Time{}, "", false
	}
	rc, err := canonicalAnd(rest)
	if err != nil {
		return time.Time{}, time.Time{}, "", false
	}
	return start, end, rc, true
}

// HasTemporaryClause reports whether any top-level && clause of the
// expression is a temporary clause, whatever else the condition holds.
// This is the test for purging earlier activations of a user and role
// (docs/jit-access.md §4: active or expired, any title, any resource
// condition).
func HasTemporaryClause(expression string) bool {
	if !isConjunction(expression) {
		return false
	}
	clauses := SplitAnd(expression)
	for i := range clauses {
		if _, _, n := temporaryAt(clauses, i); n > 0 {
			return true
		}
	}
	return false
}

// temporaryAt recognises a temporary clause at clauses[i] and returns how
// many clauses it spans: 1, or 2 when the window was written without its
// own parentheses (request.time >= … && request.time < … at top level,
// which SplitAnd cuts in two), or 0 if there is none.
func temporaryAt(clauses []string, i int) (start, end time.Time, n int) {
	if s, e, ok := parseTemporaryClause(clauses[i]); ok {
		return s, e, 1
	}
	if i+1 < len(clauses) {
		if s, e, ok := parseTemporaryClause(clauses[i] + " && " + clauses[i+1]); ok {
			return s, e, 2
		}
	}
	return time.Time{}, time.Time{}, 0
}

// parseTemporaryClause recognises one clause as a temporary clause; clause
// comes from SplitAnd, so it is trimmed and free of comments.
func parseTemporaryClause(clause string) (start, end time.Time, ok bool) {
	body := unwrapParens(clause)
	m := temporaryClause.FindStringSubmatch(body)
	if m == nil {
		return time.Time{}, time.Time{}, false
	}
	start, err1 := time.Parse(time.RFC3339Nano, m[1]+m[2])
	end, err2 := time.Parse(time.RFC3339Nano, m[3]+m[4])
	if err1 != nil || err2 != nil {
		return time.Time{}, time.Time{}, false
	}
	return start.UTC(), end.UTC(), true
}

// unwrapParens removes parentheses that enclose the whole of s, any number
// of times, with the whitespace around them. "(a) && (b)" is left alone:
// its first parenthesis closes before the end.
func unwrapParens(s string) string {
	for {
		s = strings.TrimSpace(s)
		if len(s) < 2 || s[0] != '(' || s[len(s)-1] != ')' {
			return s
		}
		closing := -1
		walkCode(s, func(i, depth int) int {
			if closing < 0 && i > 0 && depth == 0 && s[i] == ')' {
				closing = i
			}
			return 0
		})
		if closing != len(s)-1 {
			return s
		}
		s = s[1 : len(s)-1]
	}
}

// Description is the condition description of a temporary binding
// (docs/jit-access.md §4): "Self-approved, justification: "J"" without
// approvers, else "Approved by A, justification: "J"", several approvers
// separated by ", " in the order given. Unlike JIT Access, the
// justification is a Go-quoted string: its quotes and control characters
// are escaped, so user text always ends where the quote closes and cannot
// pose as the system's words ("…, Approved by ciso@…") in the binding,
// which Cloud Audit Logs record with every policy change. (JIT Access also
// sends it as the x-goog-request-reason header; the pipeline does not: a
// write may carry several grants, and the events are its audit trail.)
func Description(approvers []string, justification string) string {
	j := strconv.Quote(justification)
	if len(approvers) == 0 {
		return "Self-approved, justification: " + j
	}
	return "Approved by " + strings.Join(approvers, ", ") + ", justification: " + j
}
