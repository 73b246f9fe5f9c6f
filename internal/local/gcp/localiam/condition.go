package localiam

import (
	"fmt"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"

	"github.com/jitpipeline/jit/internal/iamcond"
)

// maxLogicalOperators is the quota on &&, || and ! in one condition
// (docs/google-cloud.md §1, Limits: "Logic operators in one binding's condition
// expression: 12").
const maxLogicalOperators = iamcond.MaxLogicalOperators

// conditions compiles IAM condition expressions in the shared IAM
// Conditions environment (iamcond.Env), and caches the programs: policies
// are re-evaluated on every permission check.
type conditions struct {
	env *cel.Env

	mu    sync.Mutex
	progs map[string]compiled
}

type compiled struct {
	prog cel.Program
	err  error
	ops  int // logical operators, for the limit
}

func newConditions() (*conditions, error) {
	env, err := iamcond.Env()
	if err != nil {
		return nil, err
	}
	return &conditions{env: env, progs: make(map[string]compiled)}, nil
}

// compile parses and type-checks an expression; the result is cached.
func (c *conditions) compile(expression string) (cel.Program, error) {
	p := c.lookup(expression)
	return p.prog, p.err
}

// lookup returns the cached compilation of expression, compiling it and
// counting its operators on a miss: SetIamPolicy checks every condition of
// the policy it is sent, and all but the new grant's are known already.
func (c *conditions) lookup(expression string) compiled {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.progs[expression]; ok {
		return p
	}
	prog, err := c.compileUncached(expression)
	p := compiled{prog: prog, err: err, ops: countLogicalOperators(expression)}
	c.progs[expression] = p
	return p
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

// countLogicalOperators counts the logical operators a condition's author
// wrote; see iamcond.CountLogicalOperators.
func countLogicalOperators(expression string) int {
	return iamcond.CountLogicalOperators(expression)
}
