package iamcond

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"

	"github.com/google/cel-go/common"
	"github.com/google/cel-go/parser"
)

// Marker is the kind of eligibility an IAM binding's condition grants
// (docs/jit-access.md §1.1).
type Marker int

const (
	// None: the condition carries no eligibility marker.
	None Marker = iota
	// JIT: has({}.jitAccessConstraint), self-approval with a justification.
	JIT
	// MPA: has({}.multiPartyApprovalConstraint), multi-party approval.
	MPA
)

// String returns the activation type as JIT Access shows it.
func (m Marker) String() string {
	switch m {
	case JIT:
		return "JIT"
	case MPA:
		return "MPA"
	case None:
		return "None"
	}
	return fmt.Sprintf("Marker(%d)", int(m))
}

// Normalised marker clauses: lower-cased, without whitespace.
const (
	jitClause = "has({}.jitaccessconstraint)"
	mpaClause = "has({}.multipartyapprovalconstraint)"
)

// Reasons a condition is not eligible, for errors.Is.
var (
	ErrNoMarker                 = errors.New("no eligibility marker clause")
	ErrNotConjunction           = errors.New("condition has a top-level || or ?: operator")
	ErrInvalidResourceCondition = errors.New("invalid resource condition")
)

// Eligibility reports whether a binding's condition makes its members
// eligible, how (JIT or MPA), and the resource condition that comes with
// it: the non-marker clauses, AND-ed and canonically formatted, or "" if
// there are none (docs/jit-access.md §1.1, §1.2). ok is false for a
// condition that is not eligible; EligibilityErr says why.
func Eligibility(expression string) (m Marker, resourceCondition string, ok bool) {
	m, resourceCondition, err := EligibilityErr(expression)
	return m, resourceCondition, err == nil
}

// EligibilityErr is Eligibility with the reason a condition is not
// eligible (ErrNoMarker, ErrNotConjunction or ErrInvalidResourceCondition);
// on error the marker is None and the resource condition "". A top-level
// || makes a condition not eligible (docs/jit-access.md §1.1), and so does a
// top-level ternary for the same reason: the marker is then not a
// conjunct of the condition.
//
// A clause is a marker if, lower-cased (ASCII) and with all whitespace
// removed, it is has({}.jitaccessconstraint) or
// has({}.multipartyapprovalconstraint). A condition with both markers is
// JIT-eligible: JIT Access keeps only the JIT entitlement when a role is
// both (docs/jit-access.md §1.1), and self-approval is what such a binding
// allows at the least.
func EligibilityErr(expression string) (Marker, string, error) {
	if !isConjunction(expression) {
		return None, "", ErrNotConjunction
	}
	m := None
	var rest []string
	for _, clause := range SplitAnd(expression) {
		switch normaliseMarker(clause) {
		case jitClause:
			m = JIT
		case mpaClause:
			if m == None {
				m = MPA
			}
		default:
			rest = append(rest, clause)
		}
	}
	if m == None {
		return None, "", ErrNoMarker
	}
	rc, err := canonicalAnd(rest)
	if err != nil {
		return None, "", err
	}
	return m, rc, nil
}

// normaliseMarker lower-cases ASCII letters and drops whitespace. Only
// ASCII is folded: CEL identifiers are ASCII, so a clause that needs
// Unicode folding to look like a marker is not one.
func normaliseMarker(clause string) string {
	var b strings.Builder
	for _, r := range clause {
		switch {
		case unicode.IsSpace(r):
		case 'A' <= r && r <= 'Z':
			b.WriteRune(r + ('a' - 'A'))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// celParser parses without type-checking (a resource condition is not
// evaluated here) and records macro calls so that has(), exists() and the
// like unparse as written.
var celParser = sync.OnceValues(func() (*parser.Parser, error) {
	return parser.NewParser(parser.Macros(parser.AllMacros...), parser.PopulateMacroCalls(true))
})

// canonicalAnd AND-s clauses, each wrapped in parentheses, and formats the
// result with cel-go's unparser on one line (docs/jit-access.md §1.2), so
// that equal conditions written differently compare equal. Each clause
// must parse on its own: wrapping a fragment such as `a) || (b` in
// parentheses would otherwise turn it into a different expression.
func canonicalAnd(clauses []string) (string, error) {
	if len(clauses) == 0 {
		return "", nil
	}
	p, err := celParser()
	if err != nil {
		return "", fmt.Errorf("failed to build the CEL parser: %w", err)
	}
	for _, c := range clauses {
		if _, iss := p.Parse(common.NewTextSource(c)); len(iss.GetErrors()) > 0 {
			return "", fmt.Errorf("%w: clause %q: %s", ErrInvalidResourceCondition, c, iss.ToDisplayString())
		}
	}
	joined := "(" + strings.Join(clauses, ") && (") + ")"
	a, iss := p.Parse(common.NewTextSource(joined))
	if len(iss.GetErrors()) > 0 {
		return "", fmt.Errorf("%w: %s", ErrInvalidResourceCondition, iss.ToDisplayString())
	}
	out, err := parser.Unparse(a.Expr(), a.SourceInfo(), parser.WrapOnOperators())
	if err != nil {
		return "", fmt.Errorf("%w: failed to format: %w", ErrInvalidResourceCondition, err)
	}
	return out, nil
}
