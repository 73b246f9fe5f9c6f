package wfrunner

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/jitpipeline/jit/internal/local/gcp/wfexpr"
)

// Workflow is a loaded and validated workflow definition.
type Workflow struct {
	// Name is the workflow id (the last segment of its resource name).
	Name string
	// Source is the YAML the workflow was loaded from.
	Source []byte

	main *routine
	subs map[string]*routine
}

// routine is main or a subworkflow.
type routine struct {
	name   string
	line   int
	params []param
	body   *block
}

type param struct {
	name       string
	def        tmpl
	hasDefault bool
}

// block is a list of steps; jumps resolve within the block first, then in
// the enclosing blocks up to the routine or the nearest for loop body.
type block struct {
	steps  []*step
	index  map[string]int
	parent *block
	loop   bool // the body of a for loop: jumps may not leave it
}

type step struct {
	name string
	line int

	assign  []assignment
	call    *callSpec
	switch_ []*switchCase
	steps   *block
	ret     tmpl
	hasRet  bool
	raise   tmpl
	hasRais bool
	try     *tryStep
	for_    *forStep
	next    string
}

type assignment struct {
	target *path
	value  tmpl
}

type callSpec struct {
	target string
	args   tmpl // nil or a map template
	result *path
	sub    *routine // set when target is a subworkflow
}

type switchCase struct {
	line      int
	condition tmpl
	body      *step // next / steps / return / raise / assign
}

type tryStep struct {
	body     *step
	retry    *retryPolicy
	except   *block
	exceptAs string
}

type retryPolicy struct {
	predicate   string // builtin predicate name, or "" when sub is set
	sub         *routine
	subName     string
	maxRetries  tmpl
	initial     tmpl
	maxDelay    tmpl
	multiplier  tmpl
	defaultName string
}

type forStep struct {
	value  string
	index  string
	in     tmpl
	rng    tmpl
	hasRng bool
	body   *block
}

// LoadError is a definition problem found before any execution runs.
type LoadError struct {
	Step    string
	Line    int
	Message string
}

func (e *LoadError) Error() string {
	if e.Step == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Message)
	}
	return fmt.Sprintf("step %q (line %d): %s", e.Step, e.Line, e.Message)
}

// Call targets the local runner implements as steps.
var stdCalls = map[string]bool{
	"http.get": true, "http.post": true, "http.put": true, "http.patch": true,
	"http.delete": true, "http.request": true,
	"sys.log": true, "sys.sleep": true, "sys.sleep_until": true, "sys.now": true, "sys.get_env": true,
	"events.create_callback_endpoint": true, "events.await_callback": true,
	connectorPubSubPublish: true, connectorTasksCreate: true,
}

// Functions the runner provides to expressions through wfexpr.Env.Call.
var exprCalls = map[string]bool{
	"sys.now": true, "sys.get_env": true,
	"http.default_retry_predicate": true, "http.default_retry_predicate_non_idempotent": true,
}

const (
	connectorPubSubPublish = "googleapis.pubsub.v1.projects.topics.publish"
	connectorTasksCreate   = "googleapis.cloudtasks.v2.projects.locations.queues.tasks.create"
)

// loader carries state while one definition is parsed.
type loader struct {
	wf   *Workflow
	errs []error
	// names of steps per routine, for duplicate detection
	seen map[string]int
	// jumps to check once every block of the routine is known
	jumps []pendingJump
	cur   *routine
}

type pendingJump struct {
	from   *block
	target string
	step   string
	line   int
}

// Load parses and validates a workflow definition. Anything outside the
// supported subset of the Workflows language fails here, naming the step and
// line, so that a definition never fails later for lack of support.
func Load(name string, source []byte) (*Workflow, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(source, &doc); err != nil {
		return nil, fmt.Errorf("failed to parse workflow %q: %w", name, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fmt.Errorf("failed to load workflow %q: empty definition", name)
	}
	root := doc.Content[0]
	l := &loader{wf: &Workflow{Name: name, Source: append([]byte(nil), source...), subs: map[string]*routine{}}}

	type rdef struct {
		name string
		node *yaml.Node
		key  *yaml.Node
	}
	var defs []rdef
	switch root.Kind {
	case yaml.SequenceNode:
		defs = append(defs, rdef{name: "main", node: &yaml.Node{Kind: yaml.MappingNode, Line: root.Line,
			Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "steps"}, root}}, key: root})
	case yaml.MappingNode:
		for i := 0; i+1 < len(root.Content); i += 2 {
			defs = append(defs, rdef{name: root.Content[i].Value, node: root.Content[i+1], key: root.Content[i]})
		}
	default:
		return nil, fmt.Errorf("failed to load workflow %q: line %d: a definition is a list of steps or a map of subworkflows", name, root.Line)
	}
	// Create the routines first, so calls can reference any of them.
	for _, d := range defs {
		r := &routine{name: d.name, line: d.key.Line}
		if d.name == "main" {
			l.wf.main = r
		} else {
			l.wf.subs[d.name] = r
		}
	}
	if l.wf.main == nil {
		l.errs = append(l.errs, &LoadError{Line: root.Line, Message: `no "main" workflow`})
	}
	for _, d := range defs {
		r := l.wf.main
		if d.name != "main" {
			r = l.wf.subs[d.name]
		}
		l.loadRoutine(r, d.node)
	}
	// Second pass: resolve subworkflow calls and predicates now that all
	// routines have parsed parameters.
	l.resolveCalls()
	if len(l.errs) > 0 {
		return nil, fmt.Errorf("failed to load workflow %q: %w", name, errors.Join(l.errs...))
	}
	return l.wf, nil
}

func (l *loader) errf(step string, line int, format string, args ...any) {
	l.errs = append(l.errs, &LoadError{Step: step, Line: line, Message: fmt.Sprintf(format, args...)})
}

func (l *loader) loadRoutine(r *routine, n *yaml.Node) {
	l.cur = r
	l.seen = map[string]int{}
	l.jumps = nil
	if n.Kind != yaml.MappingNode {
		l.errf("", n.Line, "subworkflow %q must be a map with params and steps", r.name)
		return
	}
	var stepsNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "params":
			r.params = l.loadParams(r, v)
		case "steps":
			stepsNode = v
		default:
			l.errf("", k.Line, "%q is not supported in subworkflow %q by the local runner", k.Value, r.name)
		}
	}
	if r.name == "main" && len(r.params) > 1 {
		l.errf("", n.Line, "main takes at most one parameter (the execution argument)")
	}
	if stepsNode == nil {
		l.errf("", n.Line, "subworkflow %q has no steps", r.name)
		r.body = &block{index: map[string]int{}}
		return
	}
	r.body = l.loadBlock(stepsNode, nil, false)
	for _, j := range l.jumps {
		l.checkJump(j)
	}
}

func (l *loader) loadParams(r *routine, n *yaml.Node) []param {
	if n.Kind != yaml.SequenceNode {
		l.errf("", n.Line, "params of %q must be a list", r.name)
		return nil
	}
	var ps []param
	for _, p := range n.Content {
		switch p.Kind {
		case yaml.ScalarNode:
			ps = append(ps, param{name: p.Value})
		case yaml.MappingNode:
			if len(p.Content) != 2 {
				l.errf("", p.Line, "a parameter with a default is a single `name: value`")
				continue
			}
			ps = append(ps, param{name: p.Content[0].Value, def: l.tmpl("", p.Content[1]), hasDefault: true})
		default:
			l.errf("", p.Line, "bad parameter in %q", r.name)
		}
	}
	return ps
}

func (l *loader) loadBlock(n *yaml.Node, parent *block, loop bool) *block {
	b := &block{index: map[string]int{}, parent: parent, loop: loop}
	if n.Kind != yaml.SequenceNode {
		l.errf("", n.Line, "steps must be a list of single-key maps")
		return b
	}
	for _, sn := range n.Content {
		if sn.Kind != yaml.MappingNode || len(sn.Content) != 2 {
			l.errf("", sn.Line, "a step is a map with exactly one key (the step name)")
			continue
		}
		name, body := sn.Content[0].Value, sn.Content[1]
		if prev, ok := l.seen[name]; ok {
			l.errf(name, sn.Content[0].Line, "duplicate step name (first at line %d)", prev)
		} else {
			l.seen[name] = sn.Content[0].Line
		}
		s := l.loadStep(name, sn.Content[0].Line, body, b)
		b.index[name] = len(b.steps)
		b.steps = append(b.steps, s)
	}
	return b
}

// unsupported names constructs of the Workflows language the runner refuses.
var unsupported = map[string]bool{"parallel": true}

func (l *loader) loadStep(name string, line int, n *yaml.Node, b *block) *step {
	s := &step{name: name, line: line}
	if n.Kind != yaml.MappingNode {
		l.errf(name, line, "a step body must be a map")
		return s
	}
	fields := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if unsupported[k.Value] {
			l.errf(name, line, "%q is not supported by the local runner", k.Value)
			continue
		}
		fields[k.Value] = n.Content[i+1]
	}
	l.fillStep(s, fields, b)
	return s
}

// fillStep reads the fields of a step body (also used for try bodies and
// switch conditions).
func (l *loader) fillStep(s *step, fields map[string]*yaml.Node, b *block) {
	kinds := 0
	for _, k := range sortedKeys(fields) {
		v := fields[k]
		switch k {
		case "assign":
			kinds++
			s.assign = l.loadAssign(s, v)
		case "call":
			kinds++
			s.call = l.loadCall(s, v, fields["args"], fields["result"])
		case "args", "result":
			if fields["call"] == nil {
				l.errf(s.name, v.Line, "%q without call", k)
			}
		case "switch":
			kinds++
			s.switch_ = l.loadSwitch(s, v, b)
		case "steps":
			kinds++
			s.steps = l.loadBlock(v, b, false)
		case "return":
			kinds++
			s.ret, s.hasRet = l.tmpl(s.name, v), true
		case "raise":
			kinds++
			s.raise, s.hasRais = l.tmpl(s.name, v), true
		case "try":
			kinds++
			s.try = l.loadTry(s, v, fields["retry"], fields["except"], b)
		case "retry", "except":
			if fields["try"] == nil {
				l.errf(s.name, v.Line, "%q without try", k)
			}
		case "for":
			kinds++
			s.for_ = l.loadFor(s, v, b)
		case "next":
			if v.Kind != yaml.ScalarNode {
				l.errf(s.name, v.Line, "next must be a step name")
				continue
			}
			s.next = v.Value
			l.jumps = append(l.jumps, pendingJump{from: b, target: v.Value, step: s.name, line: v.Line})
		default:
			l.errf(s.name, v.Line, "%q is not supported by the local runner", k)
		}
	}
	if kinds > 1 {
		l.errf(s.name, s.line, "a step may have only one of assign, call, switch, steps, return, raise, try, for")
	}
	if (s.hasRet || s.hasRais) && s.next != "" {
		l.errf(s.name, s.line, "next cannot follow return or raise")
	}
}

func (l *loader) loadAssign(s *step, n *yaml.Node) []assignment {
	if n.Kind != yaml.SequenceNode {
		l.errf(s.name, n.Line, "assign must be a list of `name: value`")
		return nil
	}
	var as []assignment
	for _, a := range n.Content {
		if a.Kind != yaml.MappingNode || len(a.Content) != 2 {
			l.errf(s.name, a.Line, "each assignment is a single `name: value`")
			continue
		}
		p, err := parsePath(a.Content[0].Value)
		if err != nil {
			l.errf(s.name, a.Line, "bad assignment target %q: %v", a.Content[0].Value, err)
			continue
		}
		l.checkPathExprs(s.name, a.Line, p)
		as = append(as, assignment{target: p, value: l.tmpl(s.name, a.Content[1])})
	}
	return as
}

func (l *loader) checkPathExprs(step string, line int, p *path) {
	for _, seg := range p.segs {
		if seg.expr != nil {
			l.checkFuncs(step, line, seg.expr)
		}
	}
}

func (l *loader) loadCall(s *step, target, args, result *yaml.Node) *callSpec {
	c := &callSpec{target: target.Value}
	if target.Kind != yaml.ScalarNode {
		l.errf(s.name, target.Line, "call target must be a name")
		return c
	}
	if args != nil {
		if args.Kind != yaml.MappingNode {
			l.errf(s.name, args.Line, "args must be a map")
		} else {
			c.args = l.tmpl(s.name, args)
		}
	}
	if result != nil {
		p, err := parsePath(result.Value)
		if err != nil || result.Kind != yaml.ScalarNode {
			l.errf(s.name, result.Line, "bad result variable %q", result.Value)
		} else {
			c.result = p
		}
	}
	if stdCalls[c.target] {
		l.checkStdArgs(s, c, args)
		return c
	}
	if _, ok := l.wf.subs[c.target]; ok {
		return c // resolved after every routine is loaded
	}
	if c.target == "main" {
		l.errf(s.name, target.Line, "main cannot be called")
		return c
	}
	l.errf(s.name, target.Line, "call to %q is not supported by the local runner (unknown call target)", c.target)
	return c
}

// stdArgs lists the arguments each call target accepts.
var stdArgs = map[string][]string{
	"http.get":                        {"url", "headers", "query", "auth", "timeout"},
	"http.delete":                     {"url", "headers", "query", "auth", "timeout", "body"},
	"http.post":                       {"url", "headers", "query", "auth", "timeout", "body"},
	"http.put":                        {"url", "headers", "query", "auth", "timeout", "body"},
	"http.patch":                      {"url", "headers", "query", "auth", "timeout", "body"},
	"http.request":                    {"url", "method", "headers", "query", "auth", "timeout", "body"},
	"sys.log":                         {"text", "data", "json", "severity", "timestamp"},
	"sys.sleep":                       {"seconds"},
	"sys.sleep_until":                 {"time"},
	"sys.now":                         {},
	"sys.get_env":                     {"name", "default"},
	"events.create_callback_endpoint": {"http_callback_method"},
	"events.await_callback":           {"callback", "timeout"},
	connectorPubSubPublish:            {"topic", "body"},
	connectorTasksCreate:              {"parent", "body"},
}

var stdRequired = map[string][]string{
	"http.get": {"url"}, "http.post": {"url"}, "http.put": {"url"}, "http.patch": {"url"},
	"http.delete": {"url"}, "http.request": {"url", "method"},
	"sys.sleep": {"seconds"}, "sys.sleep_until": {"time"}, "sys.get_env": {"name"},
	"events.await_callback": {"callback"},
	connectorPubSubPublish:  {"topic", "body"}, connectorTasksCreate: {"parent", "body"},
}

func (l *loader) checkStdArgs(s *step, c *callSpec, args *yaml.Node) {
	allowed := map[string]bool{}
	for _, a := range stdArgs[c.target] {
		allowed[a] = true
	}
	given := map[string]bool{}
	if args != nil && args.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(args.Content); i += 2 {
			k := args.Content[i]
			given[k.Value] = true
			if !allowed[k.Value] {
				l.errf(s.name, k.Line, "argument %q of %s is not supported by the local runner", k.Value, c.target)
			}
			if k.Value == "auth" {
				l.checkAuth(s, args.Content[i+1])
			}
		}
	}
	for _, r := range stdRequired[c.target] {
		if !given[r] {
			l.errf(s.name, s.line, "%s requires argument %q", c.target, r)
		}
	}
}

// checkAuth rejects literal auth types other than OIDC: the local runner
// mints ID tokens only (no OAuth2 access tokens).
func (l *loader) checkAuth(s *step, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "type":
			if v.Kind == yaml.ScalarNode && !wfexpr.IsExpression(v.Value) && v.Value != "OIDC" {
				l.errf(s.name, v.Line, "auth type %q is not supported by the local runner (only OIDC)", v.Value)
			}
		case "audience":
		default:
			l.errf(s.name, k.Line, "auth %q is not supported by the local runner", k.Value)
		}
	}
}

func (l *loader) loadSwitch(s *step, n *yaml.Node, b *block) []*switchCase {
	if n.Kind != yaml.SequenceNode {
		l.errf(s.name, n.Line, "switch must be a list of conditions")
		return nil
	}
	var cs []*switchCase
	for _, cn := range n.Content {
		if cn.Kind != yaml.MappingNode {
			l.errf(s.name, cn.Line, "a switch entry is a map with a condition")
			continue
		}
		c := &switchCase{line: cn.Line, body: &step{name: s.name, line: cn.Line}}
		fields := map[string]*yaml.Node{}
		for i := 0; i+1 < len(cn.Content); i += 2 {
			k, v := cn.Content[i], cn.Content[i+1]
			if k.Value == "condition" {
				c.condition = l.tmpl(s.name, v)
				continue
			}
			switch k.Value {
			case "next", "steps", "return", "raise", "assign":
				fields[k.Value] = v
			default:
				l.errf(s.name, k.Line, "%q in a switch condition is not supported by the local runner", k.Value)
			}
		}
		if c.condition == nil {
			l.errf(s.name, cn.Line, "switch entry without condition")
		}
		l.fillStep(c.body, fields, b)
		cs = append(cs, c)
	}
	return cs
}

func (l *loader) loadTry(s *step, tryN, retryN, exceptN *yaml.Node, b *block) *tryStep {
	t := &tryStep{body: &step{name: s.name, line: tryN.Line}}
	if tryN.Kind != yaml.MappingNode {
		l.errf(s.name, tryN.Line, "try must be a map (steps or a call)")
		return t
	}
	fields := map[string]*yaml.Node{}
	for i := 0; i+1 < len(tryN.Content); i += 2 {
		k := tryN.Content[i]
		if unsupported[k.Value] {
			l.errf(s.name, k.Line, "%q is not supported by the local runner", k.Value)
			continue
		}
		fields[k.Value] = tryN.Content[i+1]
	}
	l.fillStep(t.body, fields, b)
	if retryN != nil {
		t.retry = l.loadRetry(s, retryN)
	}
	if exceptN != nil {
		if exceptN.Kind != yaml.MappingNode {
			l.errf(s.name, exceptN.Line, "except must be a map with as and steps")
		} else {
			for i := 0; i+1 < len(exceptN.Content); i += 2 {
				k, v := exceptN.Content[i], exceptN.Content[i+1]
				switch k.Value {
				case "as":
					t.exceptAs = v.Value
				case "steps":
					t.except = l.loadBlock(v, b, false)
				default:
					l.errf(s.name, k.Line, "%q in except is not supported by the local runner", k.Value)
				}
			}
			if t.except == nil {
				l.errf(s.name, exceptN.Line, "except without steps")
			}
		}
	}
	if retryN == nil && exceptN == nil {
		l.errf(s.name, tryN.Line, "try without retry or except")
	}
	return t
}

// Default retry policies (docs/google-cloud.md §4): http.default_retry retries up to 5
// times with backoff 1 s, ×1.25, at most 60 s.
const (
	defaultRetry             = "http.default_retry"
	defaultRetryNonIdem      = "http.default_retry_non_idempotent"
	defaultPredicate         = "http.default_retry_predicate"
	defaultPredicateNonIdem  = "http.default_retry_predicate_non_idempotent"
	defaultMaxRetries        = 5
	defaultInitialDelay      = 1.0
	defaultMaxDelay          = 60.0
	defaultBackoffMultiplier = 1.25
)

func (l *loader) loadRetry(s *step, n *yaml.Node) *retryPolicy {
	rp := &retryPolicy{}
	if n.Kind == yaml.ScalarNode {
		switch exprName(n.Value) {
		case defaultRetry:
			rp.predicate, rp.defaultName = defaultPredicate, defaultRetry
		case defaultRetryNonIdem:
			rp.predicate, rp.defaultName = defaultPredicateNonIdem, defaultRetryNonIdem
		default:
			l.errf(s.name, n.Line, "retry policy %q is not supported by the local runner", n.Value)
		}
		return rp
	}
	if n.Kind != yaml.MappingNode {
		l.errf(s.name, n.Line, "retry must be a default policy or a map")
		return rp
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "predicate":
			switch name := exprName(v.Value); {
			case name == defaultPredicate || name == defaultPredicateNonIdem:
				rp.predicate = name
			case name != "":
				rp.subName = name
			default:
				l.errf(s.name, v.Line, "retry predicate must be ${http.default_retry_predicate…} or ${subworkflow}")
			}
		case "max_retries":
			rp.maxRetries = l.tmpl(s.name, v)
		case "backoff":
			if v.Kind != yaml.MappingNode {
				l.errf(s.name, v.Line, "backoff must be a map")
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				bk, bv := v.Content[j], v.Content[j+1]
				switch bk.Value {
				case "initial_delay":
					rp.initial = l.tmpl(s.name, bv)
				case "max_delay":
					rp.maxDelay = l.tmpl(s.name, bv)
				case "multiplier":
					rp.multiplier = l.tmpl(s.name, bv)
				default:
					l.errf(s.name, bk.Line, "%q in backoff is not supported by the local runner", bk.Value)
				}
			}
		default:
			l.errf(s.name, k.Line, "%q in retry is not supported by the local runner", k.Value)
		}
	}
	if rp.predicate == "" && rp.subName == "" {
		l.errf(s.name, n.Line, "retry without predicate")
	}
	if rp.maxRetries == nil {
		l.errf(s.name, n.Line, "retry without max_retries")
	}
	return rp
}

// exprName returns the dotted name inside "${name}", or "".
func exprName(s string) string {
	if !wfexpr.IsExpression(s) {
		return ""
	}
	in := strings.TrimSpace(s[2 : len(s)-1])
	for _, r := range in {
		if r != '.' && r != '_' && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return ""
		}
	}
	return in
}

func (l *loader) loadFor(s *step, n *yaml.Node, b *block) *forStep {
	f := &forStep{}
	if n.Kind != yaml.MappingNode {
		l.errf(s.name, n.Line, "for must be a map")
		return f
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "value":
			f.value = v.Value
		case "index":
			f.index = v.Value
		case "in":
			f.in = l.tmpl(s.name, v)
		case "range":
			f.rng, f.hasRng = l.tmpl(s.name, v), true
		case "steps":
			f.body = l.loadBlock(v, b, true)
		default:
			l.errf(s.name, k.Line, "%q in for is not supported by the local runner", k.Value)
		}
	}
	if f.value == "" {
		l.errf(s.name, n.Line, "for without value")
	}
	if (f.in == nil) == !f.hasRng {
		l.errf(s.name, n.Line, "for needs exactly one of in and range")
	}
	if f.body == nil {
		l.errf(s.name, n.Line, "for without steps")
		f.body = &block{index: map[string]int{}, parent: b, loop: true}
	}
	return f
}

// checkJump validates a next target: end, break/continue inside a loop, or a
// step in the same or an enclosing block, never out of a for loop body.
func (l *loader) checkJump(j pendingJump) {
	switch j.target {
	case "end":
		return
	case "break", "continue":
		for b := j.from; b != nil; b = b.parent {
			if b.loop {
				return
			}
		}
		l.errf(j.step, j.line, "next: %s outside a for loop", j.target)
		return
	}
	for b := j.from; b != nil; b = b.parent {
		if _, ok := b.index[j.target]; ok {
			return
		}
		if b.loop {
			break
		}
	}
	l.errf(j.step, j.line, "next: unknown step %q (jumps may target steps of the same or an enclosing block, not leave a for loop)", j.target)
}

func (l *loader) resolveCalls() {
	var walkBlock func(r *routine, b *block)
	var walkStep func(r *routine, s *step)
	walkStep = func(r *routine, s *step) {
		if s == nil {
			return
		}
		if c := s.call; c != nil && !stdCalls[c.target] {
			if sub, ok := l.wf.subs[c.target]; ok {
				c.sub = sub
				l.checkSubArgs(s, sub, c.args)
			}
		}
		for _, c := range s.switch_ {
			walkStep(r, c.body)
		}
		if s.steps != nil {
			walkBlock(r, s.steps)
		}
		if t := s.try; t != nil {
			walkStep(r, t.body)
			if t.except != nil {
				walkBlock(r, t.except)
			}
			if t.retry != nil && t.retry.subName != "" {
				sub, ok := l.wf.subs[t.retry.subName]
				if !ok {
					l.errf(s.name, s.line, "retry predicate %q is not a subworkflow", t.retry.subName)
				} else if len(sub.params) < 1 {
					l.errf(s.name, s.line, "retry predicate %q must take the exception as a parameter", t.retry.subName)
				} else {
					t.retry.sub = sub
				}
			}
		}
		if s.for_ != nil {
			walkBlock(r, s.for_.body)
		}
	}
	walkBlock = func(r *routine, b *block) {
		for _, s := range b.steps {
			walkStep(r, s)
		}
	}
	for _, r := range l.routines() {
		if r.body != nil {
			walkBlock(r, r.body)
		}
	}
}

func (l *loader) routines() []*routine {
	var rs []*routine
	if l.wf.main != nil {
		rs = append(rs, l.wf.main)
	}
	for _, k := range sortedKeys(l.wf.subs) {
		rs = append(rs, l.wf.subs[k])
	}
	return rs
}

func (l *loader) checkSubArgs(s *step, sub *routine, args tmpl) {
	given := map[string]bool{}
	if m, ok := args.(*mapT); ok {
		for _, e := range m.entries {
			k, ok := e.key.(string)
			if !ok {
				l.errf(s.name, s.line, "subworkflow arguments must have literal names")
				return
			}
			given[k] = true
		}
	}
	known := map[string]bool{}
	for _, p := range sub.params {
		known[p.name] = true
		if !p.hasDefault && !given[p.name] {
			l.errf(s.name, s.line, "call to %q is missing required argument %q", sub.name, p.name)
		}
	}
	for _, k := range sortedKeys(given) {
		if !known[k] {
			l.errf(s.name, s.line, "call to %q has unknown argument %q", sub.name, k)
		}
	}
}

// checkFuncs rejects calls of functions neither wfexpr nor the runner knows.
func (l *loader) checkFuncs(step string, line int, e *wfexpr.Expr) {
	for _, f := range e.Funcs() {
		if wfexpr.IsBuiltin(f) || exprCalls[f] {
			continue
		}
		if _, ok := l.wf.subs[f]; ok {
			continue
		}
		l.errf(step, line, "unknown function %q in expression ${%s}", f, e.String())
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
