package jsonschema

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Draft is the only $schema accepted.
const Draft = "https://json-schema.org/draft/2020-12/schema"

// Schema is a compiled schema, safe for concurrent use.
type Schema struct {
	root *node
}

// node is one compiled (sub)schema.
type node struct {
	loc string // JSON pointer of the schema in its document

	boolean *bool // a true or false schema; nil for an object

	types      []string
	enum       []any
	hasConst   bool
	constValue any
	required   []string

	properties map[string]*node
	additional *node // nil: no additionalProperties
	items      *node

	minLength, maxLength *int64
	minItems, maxItems   *int64
	minimum, maximum     *bound

	pattern *regexp.Regexp
	format  string

	allOf []*node
	cond  *node // if
	then  *node
	ref   *node
}

// bound is a minimum or a maximum, with its text for messages.
type bound struct {
	value decimal
	text  string
}

var typeNames = []string{"null", "boolean", "object", "array", "number", "string", "integer"}

// compiler compiles one document.
type compiler struct {
	defs      map[string]any   // the root's $defs
	compiled  map[string]*node // by $defs name
	compiling map[string]bool  // $defs being compiled: a $ref back is a cycle
	errs      []error
}

// Compile compiles a schema document (JSON). It refuses, naming the
// keyword and its JSON pointer, anything outside the subset of the
// specification this package implements (see the package doc).
func Compile(doc []byte) (*Schema, error) {
	v, err := Decode(doc)
	if err != nil {
		return nil, fmt.Errorf("failed to compile schema: %w", err)
	}
	return CompileValue(v)
}

// CompileValue is Compile of a document already decoded by Decode.
func CompileValue(v any) (*Schema, error) {
	c := &compiler{compiled: map[string]*node{}, compiling: map[string]bool{}}
	if obj, ok := v.(map[string]any); ok {
		if s, ok := obj["$schema"]; ok && s != Draft {
			c.fail("/$schema", "is %s, want %q: only draft 2020-12 is supported", quoteValue(s), Draft)
		}
		if id, ok := obj["$id"]; ok {
			if _, ok := id.(string); !ok {
				c.fail("/$id", "must be a string")
			}
		}
		if defs, ok := obj["$defs"]; ok {
			c.defs, ok = defs.(map[string]any)
			if !ok {
				c.fail("/$defs", "must be an object")
			}
		}
	}
	root := c.schema(v, "", true)
	for _, name := range sortedKeys(c.defs) { // compile unused ones too: they must be valid
		c.def(name, "/$defs/"+escape(name))
	}
	if err := errors.Join(c.errs...); err != nil {
		return nil, fmt.Errorf("failed to compile schema: %w", err)
	}
	return &Schema{root: root}, nil
}

func (c *compiler) fail(ptr, format string, args ...any) {
	where := ptr
	if where == "" {
		where = "(root)"
	}
	c.errs = append(c.errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
}

// def compiles the $defs entry name, once.
func (c *compiler) def(name, from string) *node {
	if n, ok := c.compiled[name]; ok {
		return n
	}
	v, ok := c.defs[name]
	if !ok {
		c.fail(from, "$ref to %s: no such $defs entry", quote(name))
		return nil
	}
	if c.compiling[name] {
		c.fail(from, "$ref to %s is recursive, which is not supported", quote(name))
		return nil
	}
	c.compiling[name] = true
	n := c.schema(v, "/$defs/"+escape(name), false)
	delete(c.compiling, name)
	c.compiled[name] = n
	return n
}

// schema compiles the schema v found at ptr; root is whether it is the
// document itself.
func (c *compiler) schema(v any, ptr string, root bool) *node {
	n := &node{loc: ptr}
	if b, ok := v.(bool); ok {
		n.boolean = &b
		return n
	}
	obj, ok := v.(map[string]any)
	if !ok {
		c.fail(ptr, "a schema must be an object or a boolean, not %s", typeOf(v))
		return n
	}
	for _, kw := range sortedKeys(obj) {
		c.keyword(n, obj, kw, ptr+"/"+escape(kw), root)
	}
	if n.then != nil && n.cond == nil {
		c.fail(ptr+"/then", "then without if has no effect")
	}
	return n
}

// keyword compiles keyword kw of obj into n; at is its pointer.
func (c *compiler) keyword(n *node, obj map[string]any, kw, at string, root bool) {
	v := obj[kw]
	switch kw {
	case "$schema", "$id", "$defs":
		if !root {
			c.fail(at, "keyword %s is only supported at the root", kw)
		}
	case "title", "description":
		if _, ok := v.(string); !ok {
			c.fail(at, "%s must be a string", kw)
		}
	case "examples":
		if _, ok := v.([]any); !ok {
			c.fail(at, "examples must be an array")
		}
	case "type":
		c.types(n, v, at)
	case "enum":
		vals, ok := v.([]any)
		if !ok || len(vals) == 0 {
			c.fail(at, "enum must be a non-empty array")
			return
		}
		n.enum = vals
	case "const":
		n.hasConst, n.constValue = true, v
	case "required":
		names, ok := c.strings(v)
		if !ok {
			c.fail(at, "required must be an array of distinct strings")
			return
		}
		n.required = names
	case "properties":
		props, ok := v.(map[string]any)
		if !ok {
			c.fail(at, "properties must be an object")
			return
		}
		n.properties = make(map[string]*node, len(props))
		for _, name := range sortedKeys(props) {
			n.properties[name] = c.schema(props[name], at+"/"+escape(name), false)
		}
	case "additionalProperties":
		n.additional = c.schema(v, at, false)
	case "items":
		n.items = c.schema(v, at, false)
	case "allOf":
		subs, ok := v.([]any)
		if !ok || len(subs) == 0 {
			c.fail(at, "allOf must be a non-empty array")
			return
		}
		for i, s := range subs {
			n.allOf = append(n.allOf, c.schema(s, fmt.Sprintf("%s/%d", at, i), false))
		}
	case "if":
		n.cond = c.schema(v, at, false)
	case "then":
		n.then = c.schema(v, at, false)
	case "minLength":
		n.minLength = c.count(v, kw, at)
	case "maxLength":
		n.maxLength = c.count(v, kw, at)
	case "minItems":
		n.minItems = c.count(v, kw, at)
	case "maxItems":
		n.maxItems = c.count(v, kw, at)
	case "minimum":
		n.minimum = c.bound(v, kw, at)
	case "maximum":
		n.maximum = c.bound(v, kw, at)
	case "pattern":
		c.pattern(n, v, at)
	case "format":
		s, _ := v.(string)
		if _, ok := formats[s]; !ok {
			c.fail(at, "format %s is not supported (only %s)", quoteValue(v), strings.Join(sortedKeys(formats), ", "))
			return
		}
		n.format = s
	case "$ref":
		s, _ := v.(string)
		name, ok := strings.CutPrefix(s, "#/$defs/")
		if !ok || strings.Contains(name, "/") {
			c.fail(at, "$ref %s is not supported: only \"#/$defs/<name>\" of the same document", quoteValue(v))
			return
		}
		name = unescape(name)
		n.ref = c.def(name, at)
	default:
		c.fail(at, "keyword %s is not supported", quote(kw))
	}
}

func (c *compiler) types(n *node, v any, at string) {
	var names []string
	switch t := v.(type) {
	case string:
		names = []string{t}
	case []any:
		var ok bool
		if names, ok = c.strings(t); !ok || len(names) == 0 {
			c.fail(at, "type must be a string or a non-empty array of distinct strings")
			return
		}
	default:
		c.fail(at, "type must be a string or an array of strings")
		return
	}
	for _, name := range names {
		if !slices.Contains(typeNames, name) {
			c.fail(at, "unknown type %s", quote(name))
		}
	}
	n.types = names
}

// strings reads an array of distinct strings.
func (c *compiler) strings(v any) ([]string, bool) {
	vals, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(vals))
	for _, x := range vals {
		s, ok := x.(string)
		if !ok || slices.Contains(out, s) {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// count reads a non-negative integer.
func (c *compiler) count(v any, kw, at string) *int64 {
	if num, ok := v.(json.Number); ok {
		if d, err := number(num); err == nil && d.isInteger() && !d.neg && d.exp <= 18 {
			n, err := strconv.ParseInt(d.digits+strings.Repeat("0", int(d.exp)-len(d.digits)), 10, 64)
			if d.digits == "" {
				n, err = 0, nil
			}
			if err == nil {
				return &n
			}
		}
	}
	c.fail(at, "%s must be a non-negative integer", kw)
	return nil
}

func (c *compiler) bound(v any, kw, at string) *bound {
	num, ok := v.(json.Number)
	if !ok {
		c.fail(at, "%s must be a number", kw)
		return nil
	}
	d, err := number(num)
	if err != nil {
		c.fail(at, "%s: %v", kw, err)
		return nil
	}
	return &bound{value: d, text: string(num)}
}

func (c *compiler) pattern(n *node, v any, at string) {
	s, ok := v.(string)
	if !ok {
		c.fail(at, "pattern must be a string")
		return
	}
	if err := ecmaCompatible(s); err != nil {
		c.fail(at, "pattern %s: %v", quote(s), err)
		return
	}
	if re, ok := patterns.Load(s); ok {
		n.pattern = re.(*regexp.Regexp)
		return
	}
	re, err := regexp.Compile(s)
	if err != nil {
		c.fail(at, "pattern %s does not compile with Go's regexp: %v", quote(s), err)
		return
	}
	patterns.Store(s, re)
	n.pattern = re
}

// patterns are the regular expressions compiled so far, by source: the
// schemas of a set share most of theirs (the grant ID, the privilege), and
// bounded repetitions make compiling one costly.
var patterns sync.Map

// ecmaCompatible refuses the few constructs that Go's regexp accepts but
// means differently from ECMA-262 (the specification's dialect) or that
// ECMA-262 lacks, so a pattern means the same to every subscriber: "."
// outside a class (ECMA-262 excludes \r, \u2028 and \u2029 too), \s and
// \S (ECMA-262's include Unicode spaces), "[]" and "[^]", \A, \z,
// \Q…\E, \C, \pN-style classes and inline flags other than (?:.
func ecmaCompatible(s string) error {
	inClass := false
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '\\' && i+1 < len(s):
			i++
			switch e := s[i]; e {
			case 's', 'S', 'A', 'z', 'Q', 'E', 'C', 'p', 'P':
				return fmt.Errorf("\\%c means something else, or nothing, in ECMA-262", e)
			}
		case ch == '[' && !inClass:
			inClass = true
			if rest := strings.TrimPrefix(s[i+1:], "^"); strings.HasPrefix(rest, "]") {
				return errors.New(`"[]" and "[^]" are a class of nothing, or anything, in ECMA-262 but start a class holding "]" in Go`)
			}
		case ch == ']':
			inClass = false
		case ch == '.' && !inClass:
			return errors.New(`"." outside a class matches differently in ECMA-262; write the class`)
		case ch == '(' && !inClass && i+1 < len(s) && s[i+1] == '?' && !strings.HasPrefix(s[i:], "(?:"):
			return errors.New("only (?: groups are supported, not flags or named groups")
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
