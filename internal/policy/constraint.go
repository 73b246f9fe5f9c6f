package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"

	"github.com/jitpipeline/jit/internal/iamcond"
	"github.com/jitpipeline/jit/internal/isoduration"
)

// Constraint is a condition on joining or approving. Constraints of the
// same Name replace inherited ones.
type Constraint interface {
	Name() string
	DisplayName() string
}

// Reserved constraint names: a level's expiry (approvals, concurrency)
// replaces its parent's.
const (
	expiryName      = "_expiry"
	approvalsName   = "_approvals"
	concurrencyName = "_concurrency"
)

// Expiry bounds how long access lasts (JIT Groups' expiry constraint). Min ==
// Max means a fixed duration the requester cannot choose.
type Expiry struct{ Min, Max time.Duration }

func (Expiry) Name() string { return expiryName }

func (e Expiry) DisplayName() string {
	if e.Fixed() {
		return "Access expires after " + isoduration.Human(e.Min)
	}
	return fmt.Sprintf("You must choose an expiry between %s and %s", isoduration.Human(e.Min), isoduration.Human(e.Max))
}

// Fixed reports whether the duration is not the requester's choice.
func (e Expiry) Fixed() bool { return e.Min == e.Max }

// Check resolves a requested duration (0 = not given) to the one granted.
func (e Expiry) Check(requested time.Duration) (time.Duration, error) {
	if e.Fixed() {
		if requested != 0 && requested != e.Min {
			return 0, fmt.Errorf("%s: the duration is fixed at %s, so %s cannot be chosen", e.DisplayName(), isoduration.Format(e.Min), isoduration.Format(requested))
		}
		return e.Min, nil
	}
	if requested == 0 {
		return 0, fmt.Errorf("%s: no duration was given", e.DisplayName())
	}
	if requested < e.Min || requested > e.Max {
		return 0, fmt.Errorf("%s: %s is out of range (%s to %s)", e.DisplayName(), isoduration.Format(requested), isoduration.Format(e.Min), isoduration.Format(e.Max))
	}
	return requested, nil
}

// Approvals is our addition, in the style of JIT Groups' constraints: how
// many distinct eligible approvers must approve (N of M), and how long a
// request waits for them before it expires. It belongs in approve
// constraints.
type Approvals struct {
	Required int
	Window   time.Duration
}

// Defaults when no approvals constraint applies.
const (
	DefaultRequiredApprovals = 1
	DefaultApprovalWindow    = 24 * time.Hour
)

// The lifetime a grant's lifecycle must fit in (see parser.lifetimes).
const (
	// MaxLifecycle is the longest a Cloud Workflows execution may run.
	MaxLifecycle = 365 * 24 * time.Hour
	// ActivationAllowance is what the lifecycle needs besides the approval
	// wait and the grant itself: the activation wait (the workflow's
	// JIT_ACTIVATION_TIMEOUT, ten minutes by default), the revocation and
	// its verification, with room to spare.
	ActivationAllowance = 24 * time.Hour
)

func (Approvals) Name() string { return approvalsName }

func (a Approvals) DisplayName() string {
	return fmt.Sprintf("%d approval(s) within %s", a.Required, isoduration.Human(a.Window))
}

// Concurrency is our addition: at most Max grants of the entitlement may be
// active at once, across all requesters. It belongs in join constraints.
type Concurrency struct{ Max int }

func (Concurrency) Name() string { return concurrencyName }

func (c Concurrency) DisplayName() string {
	return fmt.Sprintf("At most %d active grant(s) at a time", c.Max)
}

// VarType is the type of an expression constraint's input variable.
type VarType string

const (
	StringVar VarType = "string"
	IntVar    VarType = "int"
	BoolVar   VarType = "boolean"
)

// Variable is an input a requester supplies, e.g. a ticket number.
// For strings Min and Max bound the length, for ints the value.
type Variable struct {
	Type        VarType
	Name        string
	DisplayName string
	Min, Max    int64
}

// Expression is a CEL constraint (JIT Groups' expression constraint).
type Expression struct {
	name, displayName, source string
	Variables                 []Variable
	program                   cel.Program
}

func (e *Expression) Name() string        { return e.name }
func (e *Expression) DisplayName() string { return e.displayName }

// Source is the CEL text.
func (e *Expression) Source() string { return e.source }

var (
	baseEnvOnce sync.Once
	baseEnv     *cel.Env
	baseEnvErr  error
)

// celBase declares what every expression constraint sees: subject.email,
// subject.principals, group.environment, group.system, group.name, the
// string and encoder extensions, and IAM's extract() (docs/jit-access.md §3.4).
func celBase() (*cel.Env, error) {
	baseEnvOnce.Do(func() {
		baseEnv, baseEnvErr = cel.NewEnv(
			cel.Variable("subject.email", cel.StringType),
			cel.Variable("subject.principals", cel.ListType(cel.StringType)),
			cel.Variable("group.environment", cel.StringType),
			cel.Variable("group.system", cel.StringType),
			cel.Variable("group.name", cel.StringType),
			ext.Strings(),
			ext.Encoders(),
			iamcond.ExtractFunction(),
		)
	})
	return baseEnv, baseEnvErr
}

// NewExpression compiles a CEL constraint; its error is the compiler's
// diagnostic, fit for a lint message.
func NewExpression(name, displayName, source string, vars []Variable) (*Expression, error) {
	base, err := celBase()
	if err != nil {
		return nil, fmt.Errorf("failed to build CEL environment: %w", err)
	}
	opts := make([]cel.EnvOption, 0, len(vars))
	for _, v := range vars {
		opts = append(opts, cel.Variable("input."+v.Name, v.Type.celType()))
	}
	env, err := base.Extend(opts...)
	if err != nil {
		return nil, fmt.Errorf("failed to declare variables: %w", err)
	}
	ast, iss := env.Compile(source)
	if iss.Err() != nil {
		return nil, errors.New(strings.ReplaceAll(iss.Err().Error(), "\n", " "))
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("the expression must evaluate to a bool, not %s", ast.OutputType())
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(1_000_000))
	if err != nil {
		return nil, fmt.Errorf("failed to plan expression: %w", err)
	}
	return &Expression{name: name, displayName: displayName, source: source, Variables: vars, program: prg}, nil
}

func (t VarType) celType() *cel.Type {
	switch t {
	case IntVar:
		return cel.IntType
	case BoolVar:
		return cel.BoolType
	default:
		return cel.StringType
	}
}

// evalContext is what an expression constraint is evaluated against.
type evalContext struct {
	subject Subject
	group   *Group
	inputs  map[string]any // typed by convertInputs
}

// Eval reports nil when the constraint is satisfied. An expression that
// fails to evaluate counts as not satisfied (JIT Groups: "failed" → denied).
func (e *Expression) eval(c evalContext) error {
	act := map[string]any{
		"subject.email":      c.subject.Email,
		"subject.principals": c.subject.PrincipalStrings(),
		"group.environment":  c.group.system.env.Name,
		"group.system":       c.group.system.Name,
		"group.name":         c.group.Name,
	}
	for _, v := range e.Variables {
		val, ok := c.inputs[v.Name]
		if !ok {
			return fmt.Errorf("%s: input %q is missing", e.displayName, v.Name)
		}
		act["input."+v.Name] = val
	}
	out, _, err := e.program.Eval(act)
	if err != nil {
		return fmt.Errorf("%s: the constraint could not be evaluated: %w", e.displayName, err)
	}
	if ok, isBool := out.Value().(bool); !isBool || !ok {
		return errors.New(e.displayName)
	}
	return nil
}

// convertInput checks and types one raw input (JSON value or form string)
// against its declaration.
func (v Variable) convert(raw any, present bool) (any, error) {
	label := v.DisplayName
	if label == "" {
		label = v.Name
	}
	switch v.Type {
	case StringVar:
		s := ""
		if present {
			var ok bool
			if s, ok = raw.(string); !ok {
				return nil, fmt.Errorf("%s must be text", label)
			}
		}
		if n := int64(len([]rune(s))); n < v.Min || n > v.Max {
			return nil, fmt.Errorf("%s must be between %d and %d characters long", label, v.Min, v.Max)
		}
		return s, nil
	case IntVar:
		if !present {
			return nil, fmt.Errorf("%s is required", label)
		}
		var n int64
		switch x := raw.(type) {
		case float64:
			if x != float64(int64(x)) {
				return nil, fmt.Errorf("%s must be a whole number", label)
			}
			n = int64(x)
		case int:
			n = int64(x)
		case int64:
			n = x
		case string:
			var err error
			if n, err = strconv.ParseInt(strings.TrimSpace(x), 10, 64); err != nil {
				return nil, fmt.Errorf("%s must be a whole number", label)
			}
		default:
			return nil, fmt.Errorf("%s must be a whole number", label)
		}
		if n < v.Min || n > v.Max {
			return nil, fmt.Errorf("%s must be between %d and %d", label, v.Min, v.Max)
		}
		return n, nil
	case BoolVar:
		if !present {
			return false, nil
		}
		switch x := raw.(type) {
		case bool:
			return x, nil
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(x))
			if err != nil {
				return nil, fmt.Errorf("%s must be true or false", label)
			}
			return b, nil
		}
		return nil, fmt.Errorf("%s must be true or false", label)
	}
	return nil, fmt.Errorf("%s has an unknown type", label)
}
