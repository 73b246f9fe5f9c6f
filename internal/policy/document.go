package policy

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/google/cel-go/cel"
	"gopkg.in/yaml.v3"

	"github.com/jitpipeline/jit/internal/iamcond"
	"github.com/jitpipeline/jit/internal/isoduration"
	"github.com/jitpipeline/jit/internal/lazyregexp"
)

// SchemaVersion is the only policy document version there is.
const SchemaVersion = 1

// DefaultEnvironmentName names an environment whose document omits a name
// (JIT Groups derives it from deployment metadata instead).
const DefaultEnvironmentName = "default"

var (
	envNameRE      = lazyregexp.New(`^[a-zA-Z0-9-]{1,16}$`)
	groupNameRE    = lazyregexp.New(`^[a-zA-Z0-9-]{1,24}$`)
	constraintName = lazyregexp.New(`^[a-zA-Z0-9-]+$`)
	variableNameRE = lazyregexp.New(`^[A-Za-z][A-Za-z0-9_]*$`)
	projectIDRE    = lazyregexp.New(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	numericIDRE    = lazyregexp.New(`^[0-9]{1,20}$`)
	roleRE         = lazyregexp.New(`^(roles/[a-zA-Z0-9_.]+|projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/roles/[a-zA-Z0-9_.]+|organizations/[0-9]{1,20}/roles/[a-zA-Z0-9_.]+)$`)
	yamlLineRE     = lazyregexp.New(`line (\d+)`)
)

// Parse reads and checks a policy document. It reports every problem at
// once; the policy is nil whenever there is at least one issue.
func Parse(data []byte) (*Policy, Issues) {
	p := &parser{expiryMax: map[*Node]*yaml.Node{}}
	env := p.document(data)
	if len(p.issues) > 0 {
		p.issues.sort()
		return nil, p.issues
	}
	pol, err := Build(env)
	if err != nil {
		return nil, Issues{{Code: EnvironmentInvalid, Line: 1, Column: 1, Scope: env.Name, Message: err.Error()}}
	}
	if p.lifetimes(pol); len(p.issues) > 0 {
		p.issues.sort()
		return nil, p.issues
	}
	pol.Source = data
	return pol, nil
}

// Lint is Parse for those who want only the issues.
func Lint(data []byte) Issues {
	_, issues := Parse(data)
	return issues
}

type parser struct {
	issues Issues
	// expiryMax holds the max node of each level's expiry constraint, so
	// that the lifetime check after Build can point at it.
	expiryMax  map[*Node]*yaml.Node
	pendingMax *yaml.Node
}

func (p *parser) add(n *yaml.Node, code Code, scope, format string, args ...any) {
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line, col = n.Line, n.Column
	}
	p.issues = append(p.issues, Issue{Code: code, Line: line, Column: col, Scope: scope, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) document(data []byte) *Environment {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		line := 1
		if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		p.issues = append(p.issues, Issue{Code: FileInvalidSyntax, Line: line, Column: 1, Scope: "file",
			Message: strings.TrimPrefix(err.Error(), "yaml: ")})
		return nil
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind == 0 || isNull(doc) {
		p.add(doc, FileInvalidVersion, "file", "The file must specify a schema version")
		p.add(doc, EnvironmentMissing, "file", "The file must contain an environment")
		return nil
	}
	f := p.fields(doc, "file", "schemaVersion", "environment")
	if f == nil {
		return nil
	}
	switch v := f["schemaVersion"]; {
	case !present(v):
		p.add(doc, FileInvalidVersion, "file", "The file must specify a schema version")
	case v.Kind != yaml.ScalarNode || v.Value != strconv.Itoa(SchemaVersion):
		p.add(v, FileInvalidVersion, "file", "The schema version %q is not supported (use %d)", v.Value, SchemaVersion)
	}
	if !present(f["environment"]) {
		p.add(doc, EnvironmentMissing, "file", "The file must contain an environment")
		return nil
	}
	return p.environment(f["environment"])
}

func (p *parser) environment(n *yaml.Node) *Environment {
	f := p.fields(n, "environment", "name", "description", "access", "constraints", "systems")
	if f == nil {
		return nil
	}
	env := &Environment{}
	env.Name = DefaultEnvironmentName
	if name, ok := p.str(f["name"], "environment"); ok {
		if !envNameRE.MatchString(name) {
			p.add(f["name"], EnvironmentInvalid, "environment", "The environment name %q is invalid: use 1 to 16 letters, digits and hyphens", name)
		}
		env.Name = strings.ToLower(name)
	}
	scope := env.Name
	env.Description, _ = p.str(f["description"], scope)
	if present(f["access"]) {
		env.ACL = p.acl(f["access"], scope)
	} else {
		// JIT Groups' default: everyone who comes through IAP may look.
		env.ACL = []ACE{{Principal: Principal{ClassPrincipal, ClassIAPUsers}, Mask: View}}
	}
	env.Join, env.Approve = p.constraints(f["constraints"], scope)
	p.keepExpiry(&env.Node)
	seen := map[string]*yaml.Node{}
	for _, sn := range p.seq(f["systems"], scope) {
		if s := p.system(sn, env.Name, seen); s != nil {
			env.Systems = append(env.Systems, s)
		}
	}
	return env
}

// level is what systems and groups share: a checked, unique name and the
// node's description, ACL and constraints.
type level struct {
	kind  string // "system" or "group"
	code  Code
	re    *lazyregexp.Regexp
	rule  string
	where string
}

var (
	systemLevel = level{"system", SystemInvalid, envNameRE, "1 to 16 letters, digits and hyphens", "environment"}
	groupLevel  = level{"group", GroupInvalid, groupNameRE, "1 to 24 letters, digits and hyphens", "system"}
)

// node reads the fields common to systems and groups into nd and returns
// the remaining fields and the node's scope.
func (p *parser) node(n *yaml.Node, parent string, lv level, seen map[string]*yaml.Node, nd *Node, extra string) (map[string]*yaml.Node, string) {
	f := p.fields(n, parent+"."+peekName(n), "name", "description", "access", "constraints", extra)
	if f == nil {
		return nil, ""
	}
	name, ok := p.str(f["name"], parent)
	scope := parent + "." + name
	switch key := strings.ToLower(name); {
	case !ok:
		p.add(n, lv.code, parent, "The %s must have a name", lv.kind)
		scope = parent + ".(unnamed " + lv.kind + ")"
	case !lv.re.MatchString(name):
		p.add(f["name"], lv.code, scope, "The %s name %q is invalid: use %s", lv.kind, name, lv.rule)
	case seen[key] != nil:
		p.add(f["name"], lv.code, scope, "The %s name %q is used more than once in this %s (first on line %d)", lv.kind, name, lv.where, seen[key].Line)
	default:
		seen[key] = f["name"]
	}
	nd.Name = name
	nd.Description, _ = p.str(f["description"], scope)
	nd.ACL = p.acl(f["access"], scope)
	nd.Join, nd.Approve = p.constraints(f["constraints"], scope)
	p.keepExpiry(nd)
	return f, scope
}

func (p *parser) keepExpiry(nd *Node) {
	if p.pendingMax != nil {
		p.expiryMax[nd], p.pendingMax = p.pendingMax, nil
	}
}

// lifetimes refuses an expiry maximum that a grant cannot live out within
// one workflow execution: the lifecycle of a grant — the approval wait,
// the activation and the whole grant — is one Cloud Workflows execution,
// and an execution that runs longer than a year fails (docs/google-cloud.md §4,
// https://cloud.google.com/workflows/quotas#limits), so the workflow's own
// revocation would never run. Each expiry constraint is reported once, at
// its max, for the first group it fails for.
func (p *parser) lifetimes(pol *Policy) {
	reported := map[*yaml.Node]bool{}
	for _, g := range pol.Groups() {
		e, ok := g.Expiry()
		if !ok {
			continue
		}
		window := g.Approvals().Window
		if e.Max+window+ActivationAllowance <= MaxLifecycle {
			continue
		}
		var at *yaml.Node
		chain := g.chain()
		for i := len(chain) - 1; i >= 0 && at == nil; i-- {
			at = p.expiryMax[chain[i]]
		}
		if reported[at] {
			continue
		}
		reported[at] = true
		p.add(at, ConstraintInvalidExpiry, g.ID(),
			"The expiry maximum %s is too long for %s: with its approval window of %s and %s for activation, a grant could outlive the one-year limit of a workflow execution; use at most %s",
			isoduration.Format(e.Max), g.ID(), isoduration.Format(window), isoduration.Human(ActivationAllowance), isoduration.Format(MaxLifecycle-window-ActivationAllowance))
	}
}

func (p *parser) system(n *yaml.Node, env string, seen map[string]*yaml.Node) *System {
	s := &System{}
	f, scope := p.node(n, env, systemLevel, seen, &s.Node, "groups")
	if f == nil {
		return nil
	}
	groups := map[string]*yaml.Node{}
	for _, gn := range p.seq(f["groups"], scope) {
		if g := p.group(gn, scope, groups); g != nil {
			s.Groups = append(s.Groups, g)
		}
	}
	return s
}

func (p *parser) group(n *yaml.Node, parent string, seen map[string]*yaml.Node) *Group {
	g := &Group{}
	f, scope := p.node(n, parent, groupLevel, seen, &g.Node, "privileges")
	if f == nil {
		return nil
	}
	if present(f["privileges"]) {
		pf := p.fields(f["privileges"], scope, "iam")
		for _, bn := range p.seq(pf["iam"], scope) {
			if priv, ok := p.privilege(bn, scope); ok && !slices.Contains(g.Privileges, priv) {
				g.Privileges = append(g.Privileges, priv)
			}
		}
	}
	return g
}

func (p *parser) acl(n *yaml.Node, scope string) []ACE {
	var out []ACE
	for _, en := range p.seq(n, scope) {
		f := p.fields(en, scope, "principal", "allow", "deny")
		if f == nil {
			continue
		}
		var ace ACE
		ok := true
		if raw, has := p.str(f["principal"], scope); !has {
			p.add(en, ACLInvalidPrincipal, scope, "The access control entry must name a principal")
			ok = false
		} else if sa, isSA := parseServiceAccount(raw); isSA {
			ace.Principal = sa
		} else if pr, err := ParsePrincipal(raw); err != nil {
			p.add(f["principal"], ACLInvalidPrincipal, scope, "The principal '%s' is invalid: %v", raw, err)
			ok = false
		} else {
			ace.Principal = pr
		}
		allow, hasAllow := p.str(f["allow"], scope)
		deny, hasDeny := p.str(f["deny"], scope)
		switch {
		case !hasAllow && !hasDeny:
			p.add(en, ACLInvalidPermission, scope, "The access control entry for '%s' must allow or deny access", ace.Principal)
			ok = false
		case hasAllow && hasDeny:
			p.add(f["deny"], ACLInvalidPermission, scope, "The access control entry for '%s' can either allow or deny access, but not both", ace.Principal)
			ok = false
		default:
			node, text := f["allow"], allow
			if hasDeny {
				node, text, ace.Deny = f["deny"], deny, true
			}
			mask, err := ParsePermissions(text)
			if err != nil {
				p.add(node, ACLInvalidPermission, scope, "The specified permissions are invalid: %v", err)
				ok = false
			}
			ace.Mask = mask
			// Only systems request on behalf of users, and systems do
			// nothing else (ours; JIT Groups refuses serviceAccount: alone).
			isSA := ace.Principal.Type == ServiceAccountPrincipal
			switch {
			case err != nil:
			case isSA && mask != RequestOnBehalf:
				p.add(f["principal"], ACLInvalidPrincipal, scope, "The principal '%s' is a service account: it may only be granted REQUEST_ON_BEHALF", ace.Principal)
				ok = false
			case !isSA && ok && mask&(RequestOnBehalf&^View) != 0 && mask != All:
				p.add(node, ACLInvalidPermission, scope, "REQUEST_ON_BEHALF may only be granted to serviceAccount: principals")
				ok = false
			}
		}
		if ok {
			out = append(out, ace)
		}
	}
	return out
}

func (p *parser) constraints(n *yaml.Node, scope string) (join, approve []Constraint) {
	if !present(n) {
		return nil, nil
	}
	f := p.fields(n, scope, "join", "approve")
	if f == nil {
		return nil, nil
	}
	join = p.constraintList(f["join"], scope, true)
	approve = p.constraintList(f["approve"], scope, false)
	return join, approve
}

var constraintFields = []string{"type", "name", "displayName", "min", "max", "expression", "variables", "required", "window"}

func (p *parser) constraintList(n *yaml.Node, scope string, isJoin bool) []Constraint {
	var out []Constraint
	names := map[string]bool{}
	for _, cn := range p.seq(n, scope) {
		f := p.fields(cn, scope, constraintFields...)
		if f == nil {
			continue
		}
		typ, ok := p.str(f["type"], scope)
		if !ok {
			p.add(cn, ConstraintInvalidType, scope, "The constraint must have a type (expiry, expression, approvals or concurrency)")
			continue
		}
		var c Constraint
		switch strings.ToLower(strings.TrimSpace(typ)) {
		case "expiry":
			c = p.expiry(cn, f, scope, isJoin)
		case "expression":
			c = p.expression(cn, f, scope)
		case "approvals":
			c = p.approvals(cn, f, scope, isJoin)
		case "concurrency":
			c = p.concurrency(cn, f, scope, isJoin)
		default:
			p.add(f["type"], ConstraintInvalidType, scope, "The constraint type '%s' is invalid (want expiry, expression, approvals or concurrency)", typ)
			continue
		}
		if c == nil {
			continue
		}
		if names[c.Name()] {
			code := ConstraintInvalidExpression
			switch c.(type) {
			case Expiry:
				code = ConstraintInvalidExpiry
			case Approvals:
				code = ConstraintInvalidApprovals
			case Concurrency:
				code = ConstraintInvalidConcurrency
			}
			p.add(cn, code, scope, "More than one %s constraint named %q in one list", strings.ToLower(typ), strings.TrimPrefix(c.Name(), "_"))
			continue
		}
		names[c.Name()] = true
		out = append(out, c)
	}
	return out
}

// unexpected reports fields given that do not apply to a constraint type.
func (p *parser) unexpected(f map[string]*yaml.Node, scope string, code Code, what string, fields ...string) bool {
	bad := false
	for _, k := range fields {
		if present(f[k]) {
			p.add(f[k], code, scope, "%s constraints must not specify %q", what, k)
			bad = true
		}
	}
	return bad
}

func (p *parser) expiry(n *yaml.Node, f map[string]*yaml.Node, scope string, isJoin bool) Constraint {
	bad := p.unexpected(f, scope, ConstraintInvalidExpiry, "Expiry", "expression", "variables", "name", "displayName", "required", "window")
	if !isJoin {
		p.add(n, ConstraintInvalidExpiry, scope, "Expiry constraints can only be used as join-constraint")
		return nil
	}
	minS, okMin := p.str(f["min"], scope)
	maxS, okMax := p.str(f["max"], scope)
	if !okMin || !okMax {
		p.add(n, ConstraintInvalidExpiry, scope, "Expiry constraints must specify min and max")
		return nil
	}
	lo, err1 := isoduration.Parse(minS)
	hi, err2 := isoduration.Parse(maxS)
	if err1 != nil || err2 != nil {
		node, err := f["min"], err1
		if err1 == nil {
			node, err = f["max"], err2
		}
		p.add(node, ConstraintInvalidExpiry, scope, "The format of the duration '%s - %s' is invalid: %v", minS, maxS, err)
		return nil
	}
	if lo <= 0 || lo > hi {
		p.add(f["min"], ConstraintInvalidExpiry, scope, "The duration '%s - %s' is invalid: min must be positive and at most max", minS, maxS)
		return nil
	}
	if bad {
		return nil
	}
	p.pendingMax = f["max"]
	return Expiry{Min: lo, Max: hi}
}

func (p *parser) expression(n *yaml.Node, f map[string]*yaml.Node, scope string) Constraint {
	bad := p.unexpected(f, scope, ConstraintInvalidExpression, "Expression", "min", "max", "required", "window")
	name, ok := p.str(f["name"], scope)
	if !ok || !constraintName.MatchString(name) {
		node := f["name"]
		if !ok {
			node = n
		}
		p.add(node, ConstraintInvalidExpression, scope, "Expression constraints need a name of letters, digits and hyphens, got %q", name)
		bad = true
	}
	display, _ := p.str(f["displayName"], scope)
	if display == "" {
		display = name
	}
	var vars []Variable
	seen := map[string]bool{}
	for _, vn := range p.seq(f["variables"], scope) {
		v, ok := p.variable(vn, scope)
		if !ok {
			bad = true
			continue
		}
		if seen[v.Name] {
			p.add(vn, ConstraintInvalidVariableDecl, scope, "The variable %q is declared more than once", v.Name)
			bad = true
			continue
		}
		seen[v.Name] = true
		vars = append(vars, v)
	}
	src, ok := p.str(f["expression"], scope)
	if !ok || strings.TrimSpace(src) == "" {
		p.add(n, ConstraintInvalidExpression, scope, "The constraint '%s' must specify an expression", name)
		return nil
	}
	if bad {
		return nil
	}
	e, err := NewExpression(name, display, src, vars)
	if err != nil {
		p.add(f["expression"], ConstraintInvalidExpression, scope, "The constraint '%s' uses an invalid CEL expression: %v", name, err)
		return nil
	}
	return e
}

func (p *parser) variable(n *yaml.Node, scope string) (Variable, bool) {
	f := p.fields(n, scope, "type", "name", "displayName", "min", "max")
	if f == nil {
		return Variable{}, false
	}
	var v Variable
	name, _ := p.str(f["name"], scope)
	v.Name = name
	v.DisplayName, _ = p.str(f["displayName"], scope)
	typ, _ := p.str(f["type"], scope)
	ok := true
	switch strings.ToLower(strings.TrimSpace(typ)) {
	case "string":
		v.Type, v.Min, v.Max = StringVar, 0, 256
	case "int", "integer":
		v.Type, v.Min, v.Max = IntVar, 0, 1<<31-1
	case "bool", "boolean":
		v.Type = BoolVar
	default:
		p.add(n, ConstraintInvalidVariableDecl, scope, "The variable declaration '%s' uses an unknown type: %q (want string, int or boolean)", name, typ)
		ok = false
	}
	if !variableNameRE.MatchString(name) {
		p.add(n, ConstraintInvalidVariableDecl, scope, "The variable name %q is invalid: start with a letter, then letters, digits or underscores", name)
		ok = false
	}
	for _, k := range []string{"min", "max"} {
		if !present(f[k]) {
			continue
		}
		if v.Type == BoolVar {
			p.add(f[k], ConstraintInvalidVariableDecl, scope, "The boolean variable '%s' cannot have %s", name, k)
			ok = false
			continue
		}
		num, err := strconv.ParseInt(f[k].Value, 10, 64)
		if f[k].Kind != yaml.ScalarNode || err != nil || num < 0 {
			p.add(f[k], ConstraintInvalidVariableDecl, scope, "The variable '%s' has an invalid %s %q: want a whole number, 0 or more", name, k, f[k].Value)
			ok = false
			continue
		}
		if k == "min" {
			v.Min = num
		} else {
			v.Max = num
		}
	}
	if ok && v.Min > v.Max {
		p.add(n, ConstraintInvalidVariableDecl, scope, "The variable '%s' has min %d greater than max %d", name, v.Min, v.Max)
		ok = false
	}
	return v, ok
}

func (p *parser) approvals(n *yaml.Node, f map[string]*yaml.Node, scope string, isJoin bool) Constraint {
	bad := p.unexpected(f, scope, ConstraintInvalidApprovals, "Approvals", "min", "max", "expression", "variables", "name", "displayName")
	if isJoin {
		p.add(n, ConstraintInvalidApprovals, scope, "Approvals constraints can only be used as approve-constraint")
		return nil
	}
	a := Approvals{Required: DefaultRequiredApprovals, Window: DefaultApprovalWindow}
	if !present(f["required"]) && !present(f["window"]) {
		p.add(n, ConstraintInvalidApprovals, scope, "Approvals constraints must specify required, window or both")
		return nil
	}
	if r := f["required"]; present(r) {
		num, err := strconv.Atoi(r.Value)
		if r.Kind != yaml.ScalarNode || err != nil || num < 1 || num > 10 {
			p.add(r, ConstraintInvalidApprovals, scope, "required must be a whole number from 1 to 10, got %q", r.Value)
			bad = true
		}
		a.Required = num
	}
	if w, ok := p.str(f["window"], scope); ok {
		d, err := isoduration.Parse(w)
		if err != nil || d < 1e9*60 || d > 30*24*3600*1e9 {
			p.add(f["window"], ConstraintInvalidApprovals, scope, "window must be an ISO 8601 duration from PT1M to P30D, got %q", w)
			bad = true
		}
		a.Window = d
	}
	if bad {
		return nil
	}
	return a
}

func (p *parser) concurrency(n *yaml.Node, f map[string]*yaml.Node, scope string, isJoin bool) Constraint {
	bad := p.unexpected(f, scope, ConstraintInvalidConcurrency, "Concurrency", "min", "expression", "variables", "name", "displayName", "required", "window")
	if !isJoin {
		p.add(n, ConstraintInvalidConcurrency, scope, "Concurrency constraints can only be used as join-constraint")
		return nil
	}
	m := f["max"]
	if !present(m) {
		p.add(n, ConstraintInvalidConcurrency, scope, "Concurrency constraints must specify max")
		return nil
	}
	num, err := strconv.Atoi(m.Value)
	if m.Kind != yaml.ScalarNode || err != nil || num < 1 {
		p.add(m, ConstraintInvalidConcurrency, scope, "max must be a whole number of at least 1, got %q", m.Value)
		return nil
	}
	if bad {
		return nil
	}
	return Concurrency{Max: num}
}

func (p *parser) privilege(n *yaml.Node, scope string) (Privilege, bool) {
	f := p.fields(n, scope, "project", "resource", "role", "description", "condition")
	if f == nil {
		return Privilege{}, false
	}
	project, hasProject := p.str(f["project"], scope)
	resource, hasResource := p.str(f["resource"], scope)
	ok := true
	var priv Privilege
	switch {
	case hasProject && hasResource:
		p.add(f["resource"], PrivilegeDuplicateResourceID, scope, "The binding can be either for a project or resource, but not both")
		ok = false
	case !hasProject && !hasResource:
		p.add(n, PrivilegeInvalidResourceID, scope, "The binding must name a project or resource")
		ok = false
	default:
		raw, node := resource, f["resource"]
		if hasProject {
			raw, node = project, f["project"]
		}
		full, err := ResourceName(raw, hasProject)
		if err != nil {
			p.add(node, PrivilegeInvalidResourceID, scope, "The resource ID '%s' does not match the format projects/ID, folders/ID, or organizations/ID", raw)
			ok = false
		}
		priv.Resource = full
	}
	role, _ := p.str(f["role"], scope)
	if !roleRE.MatchString(role) {
		node := f["role"]
		if node == nil {
			node = n
		}
		p.add(node, PrivilegeInvalidRole, scope, "The IAM role '%s' is invalid", role)
		ok = false
	}
	priv.Role = role
	priv.Description, _ = p.str(f["description"], scope)
	if cond, has := p.str(f["condition"], scope); has && strings.TrimSpace(cond) != "" {
		if err := checkIAMCondition(cond); err != nil {
			p.add(f["condition"], PrivilegeInvalidCondition, scope, "The IAM condition is invalid: %v", err)
			ok = false
		}
		priv.Condition = strings.TrimSpace(cond)
	}
	return priv, ok
}

// checkIAMCondition type-checks a privilege's resource condition in IAM's
// condition language, as IAM will when the grant is written.
func checkIAMCondition(expr string) error {
	env, err := iamcond.Env()
	if err != nil {
		return fmt.Errorf("failed to build the IAM condition environment: %w", err)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return errors.New(strings.ReplaceAll(iss.Err().Error(), "\n", " "))
	}
	if ast.OutputType() != cel.BoolType {
		return fmt.Errorf("the condition must evaluate to a bool, not %s", ast.OutputType())
	}
	return nil
}

// ResourceName turns a privilege's resource into its full name:
// projects/ID, folders/ID or organizations/ID, or a bare project ID.
// A legacy `project:` field may hold only a project.
func ResourceName(s string, projectOnly bool) (string, error) {
	s = strings.TrimSpace(s)
	kind, id, hasSlash := strings.Cut(s, "/")
	switch {
	case !hasSlash && projectIDRE.MatchString(s):
		return "projects/" + s, nil
	case hasSlash && kind == "projects" && projectIDRE.MatchString(id):
		return s, nil
	case hasSlash && !projectOnly && (kind == "folders" || kind == "organizations") && numericIDRE.MatchString(id):
		return s, nil
	}
	return "", fmt.Errorf("invalid resource %q", s)
}

// fields checks that n is a mapping with only the known keys, reporting
// unknown and duplicate ones, and returns the values by key.
func (p *parser) fields(n *yaml.Node, scope string, known ...string) map[string]*yaml.Node {
	n = deref(n)
	if n == nil || isNull(n) {
		return map[string]*yaml.Node{}
	}
	if n.Kind != yaml.MappingNode {
		p.add(n, FileInvalidSyntax, scope, "Expected a mapping with the keys %s, found %s", strings.Join(known, ", "), kindName(n))
		return nil
	}
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	keys := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		if !slices.Contains(known, k.Value) {
			p.add(k, FileUnknownProperty, scope, "The property '%s' is not known here (known: %s)", k.Value, strings.Join(known, ", "))
			continue
		}
		if prev, dup := keys[k.Value]; dup {
			p.add(k, FileInvalidSyntax, scope, "The property '%s' appears twice (first on line %d)", k.Value, prev.Line)
			continue
		}
		keys[k.Value], out[k.Value] = k, v
	}
	return out
}

// str reads an optional scalar; ok is false when it is absent or null.
func (p *parser) str(n *yaml.Node, scope string) (string, bool) {
	if !present(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		p.add(n, FileInvalidSyntax, scope, "Expected a text value, found %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) seq(n *yaml.Node, scope string) []*yaml.Node {
	if !present(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.add(n, FileInvalidSyntax, scope, "Expected a list, found %s", kindName(n))
		return nil
	}
	out := make([]*yaml.Node, 0, len(n.Content))
	for _, c := range n.Content {
		if c = deref(c); !isNull(c) {
			out = append(out, c)
		}
	}
	return out
}

// peekName reads a mapping's name before its fields are checked, so that
// issues in them carry the element's scope.
func peekName(n *yaml.Node) string {
	if n = deref(n); n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "name" && n.Content[i+1].Kind == yaml.ScalarNode {
				return n.Content[i+1].Value
			}
		}
	}
	return "(unnamed)"
}

func deref(n *yaml.Node) *yaml.Node {
	for depth := 0; n != nil && n.Kind == yaml.AliasNode && depth < 32; depth++ {
		n = n.Alias
	}
	return n
}

func present(n *yaml.Node) bool { return n != nil && !isNull(n) }

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	default:
		return "nothing"
	}
}

// Compile is Parse shaped as a compiler for the policy source: a document
// with issues is an error (Issues), refused as a whole.
func Compile(data []byte) (*Policy, error) {
	pol, issues := Parse(data)
	if issues != nil {
		return nil, issues
	}
	return pol, nil
}
