package localiam

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// maxLogicalOperators is the quota on &&, || and ! in one condition
// (gcp-facts §1, Limits: "Logic operators in one binding's condition
// expression: 12").
const maxLogicalOperators = 12

// conditions compiles IAM condition expressions with cel-go in an
// environment of the attributes and functions IAM Conditions offer, and
// caches the programs: policies are re-evaluated on every permission check.
type conditions struct {
	env *cel.Env

	mu    sync.Mutex
	progs map[string]compiled
}

type compiled struct {
	prog cel.Program
	err  error
}

func newConditions() (*conditions, error) {
	str, dyn, boolean := cel.StringType, cel.DynType, cel.BoolType
	env, err := cel.NewEnv(
		// Request attributes. Only request.time is given a value when
		// evaluating; the others exist so that valid conditions compile, and
		// evaluate to an error (hence false) here.
		cel.Variable("request.time", cel.TimestampType),
		cel.Variable("request.host", str),
		cel.Variable("request.path", str),
		cel.Variable("request.auth.access_levels", cel.ListType(str)),
		cel.Variable("destination.ip", str),
		cel.Variable("destination.port", cel.IntType),
		cel.Variable("resource.name", str),
		cel.Variable("resource.type", str),
		cel.Variable("resource.service", str),
		// Tag functions: declared, deliberately not implemented (this fake
		// has no tags), so a call fails and the condition counts as false.
		cel.Function("resource.matchTag", cel.Overload("resource_match_tag", []*cel.Type{str, str}, boolean)),
		cel.Function("resource.matchTagId", cel.Overload("resource_match_tag_id", []*cel.Type{str, str}, boolean)),
		cel.Function("resource.hasTagKey", cel.Overload("resource_has_tag_key", []*cel.Type{str}, boolean)),
		cel.Function("resource.hasTagKeyId", cel.Overload("resource_has_tag_key_id", []*cel.Type{str}, boolean)),
		// api.getAttribute (e.g. iam.googleapis.com/modifiedGrantsByRole):
		// declared, not implemented, for the same reason.
		cel.Function("api.getAttribute", cel.Overload("api_get_attribute", []*cel.Type{str, dyn}, dyn)),
		cel.Function("hasOnly", cel.MemberOverload("list_has_only", []*cel.Type{cel.ListType(dyn), cel.ListType(dyn)}, boolean,
			cel.BinaryBinding(hasOnly))),
		// IAM's string extract('prefix{x}suffix') (conditions-attribute reference).
		cel.Function("extract", cel.MemberOverload("string_extract", []*cel.Type{str, str}, str,
			cel.BinaryBinding(extract))),
	)
	if err != nil {
		return nil, fmt.Errorf("failed to build the IAM condition environment: %w", err)
	}
	return &conditions{env: env, progs: make(map[string]compiled)}, nil
}

// compile parses and type-checks an expression; the result is cached.
func (c *conditions) compile(expression string) (cel.Program, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.progs[expression]; ok {
		return p.prog, p.err
	}
	prog, err := c.compileUncached(expression)
	c.progs[expression] = compiled{prog: prog, err: err}
	return prog, err
}

func (c *conditions) compileUncached(expression string) (cel.Program, error) {
	ast, iss := c.env.Compile(expression)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return nil, fmt.Errorf("expression has type %s, want bool", t)
	}
	prog, err := c.env.Program(ast)
	if err != nil {
		return nil, fmt.Errorf("failed to plan expression: %w", err)
	}
	return prog, nil
}

// evalContext is what a condition can see.
type evalContext struct {
	at           time.Time
	resourceName string
	resourceType string
}

// eval reports whether the expression is true in ctx. Anything that cannot
// be evaluated (an attribute without a value here, an unimplemented
// function, a non-bool result) counts as false, as IAM does.
func (c *conditions) eval(expression string, ctx evalContext) bool {
	prog, err := c.compile(expression)
	if err != nil {
		return false
	}
	out, _, err := prog.Eval(map[string]any{
		"request.time":     ctx.at,
		"resource.name":    ctx.resourceName,
		"resource.type":    ctx.resourceType,
		"resource.service": resourceService,
	})
	if err != nil {
		return false
	}
	b, ok := out.(types.Bool)
	return ok && bool(b)
}

// countLogicalOperators counts &&, || and ! outside string literals. It works
// on the source text because macros such as exists() expand into hidden
// logical operators that a user did not write.
func countLogicalOperators(expression string) int {
	n := 0
	for i := 0; i < len(expression); i++ {
		switch ch := expression[i]; ch {
		case '"', '\'':
			i = skipString(expression, i)
		case '&', '|':
			if i+1 < len(expression) && expression[i+1] == ch {
				n++
				i++
			}
		case '!':
			if i+1 >= len(expression) || expression[i+1] != '=' {
				n++
			}
		}
	}
	return n
}

// skipString returns the index of the last byte of the string literal that
// starts at i (with its quote), handling triple quotes and escapes.
func skipString(s string, i int) int {
	q := s[i]
	triple := strings.HasPrefix(s[i:], strings.Repeat(string(q), 3))
	raw := i > 0 && (s[i-1] == 'r' || s[i-1] == 'R')
	j := i + 1
	if triple {
		j = i + 3
	}
	for j < len(s) {
		switch {
		case s[j] == '\\' && !raw:
			j += 2
			continue
		case triple && strings.HasPrefix(s[j:], strings.Repeat(string(q), 3)):
			return j + 2
		case !triple && s[j] == q:
			return j
		}
		j++
	}
	return len(s) - 1
}

// extract implements IAM's string.extract(template): the text between the
// template's prefix and suffix around {name}, or "" when the template does
// not match.
func extract(target, template ref.Val) ref.Val {
	s, ok1 := target.(types.String)
	t, ok2 := template.(types.String)
	if !ok1 || !ok2 {
		return types.NewErr("extract: want string arguments")
	}
	open := strings.Index(string(t), "{")
	closing := strings.Index(string(t), "}")
	if open < 0 || closing < open {
		return types.NewErr("extract: template %q has no {placeholder}", string(t))
	}
	prefix, suffix := string(t)[:open], string(t)[closing+1:]
	start := strings.Index(string(s), prefix)
	if start < 0 {
		return types.String("")
	}
	rest := string(s)[start+len(prefix):]
	if suffix == "" {
		return types.String(rest)
	}
	end := strings.Index(rest, suffix)
	if end < 0 {
		return types.String("")
	}
	return types.String(rest[:end])
}

// hasOnly implements list.hasOnly(allowed): every element is in allowed.
func hasOnly(list, allowed ref.Val) ref.Val {
	l, ok1 := list.(traits.Lister)
	a, ok2 := allowed.(traits.Lister)
	if !ok1 || !ok2 {
		return types.NewErr("hasOnly: want list arguments")
	}
	it := l.Iterator()
	for it.HasNext() == types.True {
		if a.Contains(it.Next()) != types.True {
			return types.False
		}
	}
	return types.True
}
