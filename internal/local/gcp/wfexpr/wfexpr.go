// Package wfexpr parses and evaluates the expressions that Google Cloud
// Workflows evaluates inside "${…}", so the local workflow runner executes the
// same YAML as production with the same typing rules and exception tags.
//
// Values are JSON-like: nil, bool, int64, float64, string, []any,
// map[string]any, plus []byte for the Workflows "bytes" type. Workflows
// integers are signed 64-bit and doubles are float64
// (https://cloud.google.com/workflows/docs/reference/syntax/datatypes).
//
// Where the documentation is silent the package is deliberately stricter than
// a guess at the real service: a workflow that fails here fails loudly at
// once, while a fake that is kinder than production hides the bug until it
// is deployed. Every such choice is marked "Decision:" in the code.
package wfexpr

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Expr is a parsed expression. It is immutable and safe for concurrent Eval.
type Expr struct {
	src   string
	root  node
	vars  []string
	funcs []string
}

// Env supplies variables and the functions that are not built into wfexpr
// (sys.now, sys.get_env, http.*, events.*, subworkflows, …).
type Env interface {
	// Lookup returns the variable with the given root name.
	Lookup(name string) (any, bool)
	// Call calls a function wfexpr does not implement. It returns an error
	// wrapping ErrUnknownFunction when it does not know the name either, and
	// an *Error for a Workflows exception.
	Call(name string, args []any) (any, error)
}

// ErrUnknownFunction is wrapped by Env.Call (and by Eval) for a function name
// that neither wfexpr nor the environment implements.
var ErrUnknownFunction = errors.New("unknown function")

// Error is a Workflows exception: the map a workflow sees in `except: as: e`.
type Error struct {
	Tags    []string
	Message string
}

// Error implements error as "Tag: message".
func (e *Error) Error() string {
	return strings.Join(e.Tags, ",") + ": " + e.Message
}

// Map returns the exception as Workflows exposes it to `except: as: e`:
// {"message": …, "tags": […]}. Tags are []any so that `"KeyError" in e.tags`
// works with the in operator.
func (e *Error) Map() map[string]any {
	tags := make([]any, len(e.Tags))
	for i, t := range e.Tags {
		tags[i] = t
	}
	return map[string]any{"message": e.Message, "tags": tags}
}

func newError(tag, format string, args ...any) *Error {
	return &Error{Tags: []string{tag}, Message: fmt.Sprintf(format, args...)}
}

// Exception tags used by the evaluator.
const (
	TagSyntaxError       = "SyntaxError"
	TagTypeError         = "TypeError"
	TagValueError        = "ValueError"
	TagKeyError          = "KeyError"
	TagIndexError        = "IndexError"
	TagZeroDivisionError = "ZeroDivisionError"
)

// Parse parses src, the text inside "${" and "}". A syntax error, or a
// built-in function called with the wrong number of arguments, is an *Error
// tagged SyntaxError whose message names the line and column: Workflows
// rejects such a definition at deploy time, so the runner should report it
// at load time.
func Parse(src string) (*Expr, error) {
	p := &parser{lx: lexer{src: src}}
	root, err := p.parse()
	if err != nil {
		return nil, err
	}
	e := &Expr{src: src, root: root}
	collect(root, &e.vars, &e.funcs)
	slices.Sort(e.vars)
	e.vars = slices.Compact(e.vars)
	slices.Sort(e.funcs)
	e.funcs = slices.Compact(e.funcs)
	return e, nil
}

// Eval evaluates the expression. Workflows exceptions are returned as *Error;
// an error from Env.Call that is not an *Error is returned wrapped, so
// errors.Is(err, ErrUnknownFunction) still works. The result may share
// structure with values returned by env; copy it (Copy) before mutating.
func (e *Expr) Eval(env Env) (any, error) {
	return eval(e.root, env)
}

// String renders the expression canonically (without "${ }"); parsing the
// result yields an expression with the same String.
func (e *Expr) String() string {
	var b strings.Builder
	write(&b, e.root)
	return b.String()
}

// Vars lists, sorted, the root variable names the expression references
// (for `a.b[0]` it is "a"). Dotted function names are not variables.
func (e *Expr) Vars() []string { return slices.Clone(e.vars) }

// Funcs lists, sorted, the dotted names of the functions the expression
// calls ("len", "map.get", "sys.now"), so the runner can reject unknown ones
// at load time.
func (e *Expr) Funcs() []string { return slices.Clone(e.funcs) }

// IsBuiltin reports whether wfexpr itself implements the function name.
func IsBuiltin(name string) bool {
	_, ok := builtins[name]
	return ok
}

// Builtins lists, sorted, every function name wfexpr implements.
func Builtins() []string {
	names := make([]string, 0, len(builtins))
	for n := range builtins {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// IsExpression reports whether a YAML scalar is a Workflows expression. Only
// a string that is entirely "${…}" is one; Workflows has no string
// interpolation, so "Bearer ${token}" stays literal text and must be written
// ${"Bearer " + token}
// (https://cloud.google.com/workflows/docs/reference/syntax/expressions: "All
// expressions must begin with a $ and be enclosed in curly brackets").
// Decision: no whitespace is trimmed; YAML already strips it from plain
// scalars, and " ${x}" in a quoted scalar is left literal.
func IsExpression(s string) bool {
	return len(s) >= 3 && strings.HasPrefix(s, "${") && strings.HasSuffix(s, "}")
}

// Interpolate evaluates a YAML scalar: an expression scalar (IsExpression)
// yields the expression's value of any type, any other string is returned
// unchanged. Runners evaluating the same scalar repeatedly should Parse once
// instead.
func Interpolate(s string, env Env) (any, error) {
	if !IsExpression(s) {
		return s, nil
	}
	e, err := Parse(s[2 : len(s)-1])
	if err != nil {
		return nil, err
	}
	return e.Eval(env)
}

// Copy returns a deep copy of a value: maps, lists and bytes are duplicated,
// scalars are returned as they are. Workflows assignment has value semantics,
// so the runner copies before storing a value that other variables share.
func Copy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = Copy(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = Copy(e)
		}
		return l
	case []byte:
		return slices.Clone(x)
	default:
		return v
	}
}

// TypeName names a value's Workflows type as get_type() does: "null",
// "bool", "integer", "double", "string", "bytes", "list" or "map"; anything
// else is "unsupported(<Go type>)".
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case int64, int, int32:
		return "integer"
	case float64, float32:
		return "double"
	case string:
		return "string"
	case []byte:
		return "bytes"
	case []any:
		return "list"
	case map[string]any:
		return "map"
	default:
		return fmt.Sprintf("unsupported(%T)", v)
	}
}
