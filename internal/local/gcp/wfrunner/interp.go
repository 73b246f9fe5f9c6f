package wfrunner

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/jitpipeline/jit/internal/local/gcp/wfexpr"
)

// raised is a Workflows exception in flight. Its value is what `except: as:`
// sees: a map with message and tags for errors the runtime raises, or any
// value a `raise` step gave.
type raised struct{ value any }

func (r *raised) Error() string {
	if m, ok := r.value.(map[string]any); ok {
		return fmt.Sprintf("%v: %v", m["tags"], m["message"])
	}
	return fmt.Sprintf("%v", r.value)
}

// newError makes a runtime exception with one tag, e.g. TypeError.
func newError(tag, msg string) *raised {
	return &raised{value: map[string]any{"message": msg, "tags": []any{tag}}}
}

// asRaised turns an error into a catchable exception; ok is false for
// internal errors and for a stopped execution.
func asRaised(err error) (*raised, bool) {
	var r *raised
	if errors.As(err, &r) {
		return r, true
	}
	var we *wfexpr.Error
	if errors.As(err, &we) {
		return &raised{value: we.Map()}, true
	}
	if errors.Is(err, wfexpr.ErrUnknownFunction) {
		return newError("KeyError", err.Error()), true
	}
	return nil, false
}

// hasTag reports whether an exception value carries tag.
func hasTag(v any, tag string) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	tags, _ := m["tags"].([]any)
	for _, t := range tags {
		if t == tag {
			return true
		}
	}
	return false
}

// errStopped ends the interpreter when the execution is cancelled or the
// runner shuts down; it is never caught by try/except.
var errStopped = errors.New("execution stopped")

// Limits of one execution.
const (
	// MaxArgumentBytes is the execution argument limit (docs/google-cloud.md §4,
	// executionspb Execution.Argument: "The size limit is 32KB").
	MaxArgumentBytes = 32 * 1024
	// MaxResultBytes bounds the JSON result, using the documented 512 KB
	// memory limit for variables (docs/google-cloud.md §4, [2nd]).
	MaxResultBytes = MaxMemoryBytes
	// MaxCallDepth bounds subworkflow recursion.
	MaxCallDepth = 20
	// DefaultMaxSteps is the default step budget of one execution.
	DefaultMaxSteps = 100_000
	// maxSleepSeconds is the sys.sleep maximum, one year (docs/google-cloud.md §4).
	maxSleepSeconds = 31536000
)

type ctlKind int

const (
	ctlNone ctlKind = iota
	ctlJump
	ctlEnd
	ctlBreak
	ctlContinue
	ctlReturn
)

type ctl struct {
	kind   ctlKind
	target string
	value  any
}

// frame is one routine invocation: a stack of scopes, the innermost last.
// for loops push a scope per iteration, and except blocks one per run, so
// variables first assigned there do not exist after them (Workflows
// "workflows-loop-scope" sample; syntax/variables#variable-scope).
type frame struct {
	routine *routine
	scopes  []map[string]any
}

func (f *frame) lookup(name string) (any, bool) {
	for i := len(f.scopes) - 1; i >= 0; i-- {
		if v, ok := f.scopes[i][name]; ok {
			return v, true
		}
	}
	return nil, false
}

func (f *frame) set(name string, v any) {
	for i := len(f.scopes) - 1; i >= 0; i-- {
		if _, ok := f.scopes[i][name]; ok {
			f.scopes[i][name] = v
			return
		}
	}
	f.scopes[len(f.scopes)-1][name] = v
}

// env adapts a frame to wfexpr.
type env struct {
	ex *execution
	fr *frame
}

func (e env) Lookup(name string) (any, bool) { return e.fr.lookup(name) }

func (e env) Call(name string, args []any) (any, error) {
	switch name {
	case "sys.now":
		if len(args) != 0 {
			return nil, newError("TypeError", "sys.now takes no arguments")
		}
		return e.ex.sysNow()
	case "sys.get_env":
		if len(args) < 1 || len(args) > 2 {
			return nil, newError("TypeError", "sys.get_env takes a name and an optional default")
		}
		var def any
		if len(args) == 2 {
			def = args[1]
		}
		return e.ex.getEnv(args[0], def)
	case defaultPredicate, defaultPredicateNonIdem:
		if len(args) != 1 {
			return nil, newError("TypeError", name+" takes one argument")
		}
		return retryPredicate(name, args[0]), nil
	}
	if sub, ok := e.ex.wf.subs[name]; ok {
		if len(args) > len(sub.params) {
			return nil, newError("TypeError", fmt.Sprintf("%s takes at most %d arguments", name, len(sub.params)))
		}
		named := map[string]any{}
		for i, a := range args {
			named[sub.params[i].name] = a
		}
		return e.ex.callRoutine(sub, named)
	}
	return nil, fmt.Errorf("%w: %s", wfexpr.ErrUnknownFunction, name)
}

func (ex *execution) eval(fr *frame, t tmpl) (any, error) {
	return evalTmpl(t, env{ex: ex, fr: fr})
}

// callRoutine runs main or a subworkflow with named arguments.
func (ex *execution) callRoutine(r *routine, args map[string]any) (any, error) {
	if ex.depth >= MaxCallDepth {
		return nil, newError("RecursionError", fmt.Sprintf("maximum call depth %d exceeded calling %q", MaxCallDepth, r.name))
	}
	ex.depth++
	defer func() { ex.depth-- }()
	fr := &frame{routine: r, scopes: []map[string]any{{}}}
	ex.frames = append(ex.frames, fr)
	defer func() { ex.frames = ex.frames[:len(ex.frames)-1] }()
	for _, p := range r.params {
		if v, ok := args[p.name]; ok {
			fr.scopes[0][p.name] = v
			continue
		}
		if !p.hasDefault {
			if r.name == "main" {
				fr.scopes[0][p.name] = nil
				continue
			}
			return nil, newError("TypeError", fmt.Sprintf("missing argument %q calling %q", p.name, r.name))
		}
		v, err := ex.eval(fr, p.def)
		if err != nil {
			return nil, err
		}
		fr.scopes[0][p.name] = v
	}
	if err := ex.checkMemory(); err != nil {
		return nil, err
	}
	c, err := ex.execBlock(fr, r.body)
	if err != nil {
		return nil, err
	}
	switch c.kind {
	case ctlReturn:
		return c.value, nil
	case ctlJump:
		return nil, fmt.Errorf("internal: unresolved jump to %q", c.target)
	}
	return nil, nil
}

func (ex *execution) execBlock(fr *frame, b *block) (ctl, error) {
	for i := 0; i < len(b.steps); {
		c, err := ex.execStep(fr, b.steps[i], b)
		if err != nil {
			return ctl{}, err
		}
		switch c.kind {
		case ctlNone:
			i++
		case ctlJump:
			idx, ok := b.index[c.target]
			if !ok {
				return c, nil
			}
			i = idx
		default:
			return c, nil
		}
	}
	return ctl{}, nil
}

func (ex *execution) execStep(fr *frame, s *step, b *block) (ctl, error) {
	if err := ex.ctx.Err(); err != nil {
		return ctl{}, errStopped
	}
	ex.steps++
	ex.curStep = s.name
	if ex.steps > ex.maxSteps {
		return ctl{}, newError("ResourceLimitError", fmt.Sprintf("step budget of %d steps exhausted", ex.maxSteps))
	}
	if err := ex.overdue(); err != nil {
		return ctl{}, err
	}
	return ex.doStep(fr, s, b)
}

// doStep performs a step body's action, then its next.
func (ex *execution) doStep(fr *frame, s *step, b *block) (ctl, error) {
	c, err := ex.action(fr, s, b)
	if err != nil || c.kind != ctlNone || s.next == "" {
		return c, err
	}
	switch s.next {
	case "end":
		return ctl{kind: ctlEnd}, nil
	case "break":
		return ctl{kind: ctlBreak}, nil
	case "continue":
		return ctl{kind: ctlContinue}, nil
	}
	return ctl{kind: ctlJump, target: s.next}, nil
}

func (ex *execution) action(fr *frame, s *step, b *block) (ctl, error) {
	switch {
	case s.assign != nil:
		for _, a := range s.assign {
			v, err := ex.eval(fr, a.value)
			if err != nil {
				return ctl{}, err
			}
			if err := ex.assignChecked(fr, a.target, v); err != nil {
				return ctl{}, err
			}
		}
	case s.call != nil:
		v, err := ex.call(fr, s.call)
		if err != nil {
			return ctl{}, err
		}
		if s.call.result != nil {
			if err := ex.assignChecked(fr, s.call.result, v); err != nil {
				return ctl{}, err
			}
		}
	case s.switch_ != nil:
		for _, c := range s.switch_ {
			v, err := ex.eval(fr, c.condition)
			if err != nil {
				return ctl{}, err
			}
			ok, isBool := v.(bool)
			if !isBool {
				return ctl{}, newError("TypeError", fmt.Sprintf("switch condition must be a boolean, got %s", wfexpr.TypeName(v)))
			}
			if ok {
				return ex.doStep(fr, c.body, b)
			}
		}
	case s.steps != nil:
		return ex.execBlock(fr, s.steps)
	case s.hasRet:
		v, err := ex.eval(fr, s.ret)
		if err != nil {
			return ctl{}, err
		}
		return ctl{kind: ctlReturn, value: v}, nil
	case s.hasRais:
		v, err := ex.eval(fr, s.raise)
		if err != nil {
			return ctl{}, err
		}
		return ctl{}, &raised{value: v}
	case s.try != nil:
		return ex.execTry(fr, s.try, b)
	case s.for_ != nil:
		return ex.execFor(fr, s.for_)
	}
	return ctl{}, nil
}

func (ex *execution) execTry(fr *frame, t *tryStep, b *block) (ctl, error) {
	var (
		retries, maxRetries int64
		delay, maxDelay     float64
		multiplier          float64
		policyRead          bool
	)
	for {
		c, err := ex.doStep(fr, t.body, b)
		if err == nil {
			return c, nil
		}
		rz, ok := asRaised(err)
		if !ok {
			return ctl{}, err
		}
		if t.retry != nil {
			if !policyRead {
				policyRead = true
				if maxRetries, delay, maxDelay, multiplier, err = ex.readPolicy(fr, t.retry); err != nil {
					return ctl{}, err
				}
			}
			again, err := ex.shouldRetry(t.retry, rz.value)
			if err != nil {
				return ctl{}, err
			}
			if again && retries < maxRetries {
				retries++
				wait := delay
				if err := ex.sleepFor("retry", wait); err != nil {
					return ctl{}, err
				}
				delay = math.Min(delay*multiplier, maxDelay)
				continue
			}
		}
		if t.except == nil {
			return ctl{}, rz
		}
		return ex.execExcept(fr, t, rz.value)
	}
}

// execExcept runs an except block in a scope of its own: the `as` variable
// and any variable the block creates exist only inside it, while variables
// that existed before the try are assigned through. "A variable created
// inside an except block belongs to the local scope of that block, and is
// accessible only in that scope" —
// https://cloud.google.com/workflows/docs/reference/syntax/catching-errors#variable-scope
// and https://cloud.google.com/workflows/docs/reference/syntax/variables#variable-scope.
func (ex *execution) execExcept(fr *frame, t *tryStep, e any) (ctl, error) {
	scope := map[string]any{}
	if t.exceptAs != "" {
		scope[t.exceptAs] = e
	}
	fr.scopes = append(fr.scopes, scope)
	defer func() { fr.scopes = fr.scopes[:len(fr.scopes)-1] }()
	return ex.execBlock(fr, t.except)
}

func (ex *execution) readPolicy(fr *frame, rp *retryPolicy) (maxRetries int64, initial, maxDelay, mult float64, err error) {
	if rp.defaultName != "" {
		return defaultMaxRetries, defaultInitialDelay, defaultMaxDelay, defaultBackoffMultiplier, nil
	}
	num := func(t tmpl, def float64, what string) (float64, error) {
		if t == nil {
			return def, nil
		}
		v, err := ex.eval(fr, t)
		if err != nil {
			return 0, err
		}
		switch x := v.(type) {
		case int64:
			return float64(x), nil
		case float64:
			return x, nil
		}
		return 0, newError("TypeError", fmt.Sprintf("retry %s must be a number, got %s", what, wfexpr.TypeName(v)))
	}
	mr, err := num(rp.maxRetries, 0, "max_retries")
	if err != nil {
		return 0, 0, 0, 0, err
	}
	if initial, err = num(rp.initial, defaultInitialDelay, "initial_delay"); err != nil {
		return 0, 0, 0, 0, err
	}
	if maxDelay, err = num(rp.maxDelay, defaultMaxDelay, "max_delay"); err != nil {
		return 0, 0, 0, 0, err
	}
	if mult, err = num(rp.multiplier, defaultBackoffMultiplier, "multiplier"); err != nil {
		return 0, 0, 0, 0, err
	}
	if mr < 0 || initial < 0 || maxDelay < 0 || mult < 1 {
		return 0, 0, 0, 0, newError("ValueError", "retry values must be non-negative and multiplier at least 1")
	}
	return int64(mr), initial, maxDelay, mult, nil
}

func (ex *execution) shouldRetry(rp *retryPolicy, e any) (bool, error) {
	if rp.sub == nil {
		return retryPredicate(rp.predicate, e), nil
	}
	v, err := ex.callRoutine(rp.sub, map[string]any{rp.sub.params[0].name: e})
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, newError("TypeError", fmt.Sprintf("retry predicate %q must return a boolean, got %s", rp.sub.name, wfexpr.TypeName(v)))
	}
	return b, nil
}

// retryPredicate implements http.default_retry_predicate (429, 502, 503,
// 504, ConnectionError, ConnectionFailedError, TimeoutError) and its
// non-idempotent variant (429, 503, ConnectionFailedError) — docs/google-cloud.md §4.
func retryPredicate(name string, e any) bool {
	codes := map[int64]bool{429: true, 502: true, 503: true, 504: true}
	tags := []string{"ConnectionError", "ConnectionFailedError", "TimeoutError"}
	if name == defaultPredicateNonIdem {
		codes = map[int64]bool{429: true, 503: true}
		tags = []string{"ConnectionFailedError"}
	}
	for _, t := range tags {
		if hasTag(e, t) {
			return true
		}
	}
	if m, ok := e.(map[string]any); ok {
		if code, ok := m["code"].(int64); ok && codes[code] {
			return true
		}
	}
	return false
}

func (ex *execution) execFor(fr *frame, f *forStep) (ctl, error) {
	var items []any
	if f.hasRng {
		v, err := ex.eval(fr, f.rng)
		if err != nil {
			return ctl{}, err
		}
		items, err = rangeItems(v)
		if err != nil {
			return ctl{}, err
		}
	} else {
		v, err := ex.eval(fr, f.in)
		if err != nil {
			return ctl{}, err
		}
		// Only lists: a map is iterated as in: ${keys(m)} (Workflows
		// iteration reference); iterating a map directly is a TypeError.
		x, ok := v.([]any)
		if !ok {
			return ctl{}, newError("TypeError", fmt.Sprintf("for in must be a list, got %s", wfexpr.TypeName(v)))
		}
		items = x
	}
	for i, it := range items {
		scope := map[string]any{f.value: it}
		if f.index != "" {
			scope[f.index] = int64(i)
		}
		fr.scopes = append(fr.scopes, scope)
		if err := ex.checkMemory(); err != nil {
			fr.scopes = fr.scopes[:len(fr.scopes)-1]
			return ctl{}, err
		}
		c, err := ex.execBlock(fr, f.body)
		fr.scopes = fr.scopes[:len(fr.scopes)-1]
		if err != nil {
			return ctl{}, err
		}
		switch c.kind {
		case ctlBreak:
			return ctl{}, nil
		case ctlNone, ctlContinue:
			continue
		default:
			return c, nil
		}
	}
	return ctl{}, nil
}

// rangeItems expands range: [a, b], inclusive at both ends.
func rangeItems(v any) ([]any, error) {
	l, ok := v.([]any)
	if !ok || len(l) != 2 {
		return nil, newError("TypeError", "range must be a list of two numbers")
	}
	var items []any
	a, aInt := l[0].(int64)
	b, bInt := l[1].(int64)
	if aInt && bInt {
		if b-a > DefaultMaxSteps {
			return nil, newError("ResourceLimitError", "range too long")
		}
		for i := a; i <= b; i++ {
			items = append(items, i)
		}
		return items, nil
	}
	af, ok1 := toFloat(l[0])
	bf, ok2 := toFloat(l[1])
	if !ok1 || !ok2 {
		return nil, newError("TypeError", "range must be a list of two numbers")
	}
	if bf-af > DefaultMaxSteps {
		return nil, newError("ResourceLimitError", "range too long")
	}
	for x := af; x <= bf; x++ {
		items = append(items, x)
	}
	return items, nil
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// setPath assigns v to an assignment target. A plain name updates the
// innermost scope that has it, or creates it in the innermost scope; a
// selector path updates a map key (creating it) or an existing list index.
func (ex *execution) setPath(fr *frame, p *path, v any) error {
	if len(p.segs) == 0 {
		fr.set(p.root, v)
		return nil
	}
	cur, ok := fr.lookup(p.root)
	if !ok {
		return newError("KeyError", fmt.Sprintf("variable %q is not defined (assigning %s)", p.root, p.src))
	}
	e := env{ex: ex, fr: fr}
	for i, seg := range p.segs {
		var key any = seg.field
		if seg.expr != nil {
			k, err := seg.expr.Eval(e)
			if err != nil {
				return err
			}
			key = k
		}
		last := i == len(p.segs)-1
		switch c := cur.(type) {
		case map[string]any:
			k, ok := key.(string)
			if !ok {
				return newError("TypeError", fmt.Sprintf("map key must be a string, got %s", wfexpr.TypeName(key)))
			}
			if last {
				c[k] = v
				return nil
			}
			next, ok := c[k]
			if !ok {
				return newError("KeyError", fmt.Sprintf("key %q not found (assigning %s)", k, p.src))
			}
			cur = next
		case []any:
			idx, ok := key.(int64)
			if !ok {
				return newError("TypeError", fmt.Sprintf("list index must be an integer, got %s", wfexpr.TypeName(key)))
			}
			if idx < 0 || idx >= int64(len(c)) {
				return newError("IndexError", fmt.Sprintf("list index %d out of range (assigning %s)", idx, p.src))
			}
			if last {
				c[idx] = v
				return nil
			}
			cur = c[idx]
		default:
			return newError("TypeError", fmt.Sprintf("cannot index %s (assigning %s)", wfexpr.TypeName(cur), p.src))
		}
	}
	return nil
}

// call runs a call step: a subworkflow or a standard library function.
func (ex *execution) call(fr *frame, c *callSpec) (any, error) {
	var args map[string]any
	if c.args != nil {
		v, err := ex.eval(fr, c.args)
		if err != nil {
			return nil, err
		}
		args, _ = v.(map[string]any)
	}
	if args == nil {
		args = map[string]any{}
	}
	if c.sub != nil {
		return ex.callRoutine(c.sub, args)
	}
	return ex.callStd(c.target, args)
}

// joinTags renders an exception's tags for the error context.
func joinTags(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	tags, _ := m["tags"].([]any)
	var s []string
	for _, t := range tags {
		s = append(s, fmt.Sprint(t))
	}
	return strings.Join(s, ", ")
}
