package jsonschema

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Problem is one way an instance breaks its schema.
type Problem struct {
	// Path is the JSON pointer (RFC 6901) of the offending value in the
	// instance; "" is the whole instance.
	Path string
	// Keyword is the JSON pointer, in the schema, of the keyword that
	// failed ("/properties/grantId/pattern").
	Keyword string
	// Message says what is wrong.
	Message string
}

// ValidationError lists every problem of an instance, in the order found.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		path := p.Path
		if path == "" {
			path = "(root)"
		}
		msgs[i] = path + ": " + p.Message + " (" + p.Keyword + ")"
	}
	return "invalid instance: " + strings.Join(msgs, "; ")
}

// Validate checks v, a value as Decode returns it, against s; it returns
// nil or a *ValidationError.
func (s *Schema) Validate(v any) error {
	var out []Problem
	s.root.validate(v, "", &out)
	if len(out) == 0 {
		return nil
	}
	return &ValidationError{Problems: out}
}

// validate appends to out the problems of v, found at path, under n.
func (n *node) validate(v any, path string, out *[]Problem) {
	report := func(kw, format string, args ...any) {
		*out = append(*out, Problem{Path: path, Keyword: n.loc + "/" + kw, Message: fmt.Sprintf(format, args...)})
	}
	if n == nil { // left by a failed compilation, which Compile reports
		return
	}
	if n.boolean != nil {
		if !*n.boolean {
			*out = append(*out, Problem{Path: path, Keyword: n.loc, Message: "false schema"})
		}
		return
	}
	if n.ref != nil {
		n.ref.validate(v, path, out)
	}
	if len(n.types) > 0 && !hasType(v, n.types) {
		report("type", "got %s, want %s", typeOf(v), strings.Join(n.types, " or "))
		return // the other keywords would only say the same thing again
	}
	if n.hasConst && !equal(v, n.constValue) {
		report("const", "value must be %s", quoteValue(n.constValue))
	}
	if n.enum != nil && !slices.ContainsFunc(n.enum, func(e any) bool { return equal(v, e) }) {
		vals := make([]string, len(n.enum))
		for i, e := range n.enum {
			vals[i] = quoteValue(e)
		}
		report("enum", "value must be one of %s", strings.Join(vals, ", "))
	}
	switch x := v.(type) {
	case map[string]any:
		n.object(x, path, out, report)
	case []any:
		if n.minItems != nil && int64(len(x)) < *n.minItems {
			report("minItems", "minItems: got %d, want %d", len(x), *n.minItems)
		}
		if n.maxItems != nil && int64(len(x)) > *n.maxItems {
			report("maxItems", "maxItems: got %d, want %d", len(x), *n.maxItems)
		}
		if n.items != nil {
			for i, item := range x {
				n.items.validate(item, path+"/"+strconv.Itoa(i), out)
			}
		}
	case string:
		n.string(x, report)
	case json.Number:
		if d, err := number(x); err == nil {
			if n.minimum != nil && d.cmp(n.minimum.value) < 0 {
				report("minimum", "minimum: got %s, want %s", x, n.minimum.text)
			}
			if n.maximum != nil && d.cmp(n.maximum.value) > 0 {
				report("maximum", "maximum: got %s, want %s", x, n.maximum.text)
			}
		}
	}
	for _, sub := range n.allOf {
		sub.validate(v, path, out)
	}
	if n.cond != nil && n.then != nil {
		var condProblems []Problem
		n.cond.validate(v, path, &condProblems)
		if len(condProblems) == 0 {
			n.then.validate(v, path, out)
		}
	}
}

func (n *node) object(x map[string]any, path string, out *[]Problem, report func(kw, format string, args ...any)) {
	var missing []string
	for _, r := range n.required {
		if _, ok := x[r]; !ok {
			missing = append(missing, quote(r))
		}
	}
	switch len(missing) {
	case 0:
	case 1:
		report("required", "missing property %s", missing[0])
	default:
		report("required", "missing properties %s", strings.Join(missing, ", "))
	}
	var extra []string
	for _, k := range sortedKeys(x) {
		if p, ok := n.properties[k]; ok {
			p.validate(x[k], path+"/"+escape(k), out)
			continue
		}
		if n.additional == nil {
			continue
		}
		if b := n.additional.boolean; b != nil {
			if !*b {
				extra = append(extra, quote(k))
			}
			continue
		}
		n.additional.validate(x[k], path+"/"+escape(k), out)
	}
	if len(extra) > 0 {
		report("additionalProperties", "additional properties %s not allowed", strings.Join(extra, ", "))
	}
}

func (n *node) string(s string, report func(kw, format string, args ...any)) {
	if n.minLength != nil || n.maxLength != nil {
		l := int64(utf8.RuneCountInString(s))
		if n.minLength != nil && l < *n.minLength {
			report("minLength", "minLength: got %d, want %d", l, *n.minLength)
		}
		if n.maxLength != nil && l > *n.maxLength {
			report("maxLength", "maxLength: got %d, want %d", l, *n.maxLength)
		}
	}
	if n.pattern != nil && !n.pattern.MatchString(s) {
		report("pattern", "%s does not match pattern %s", quote(s), quote(n.pattern.String()))
	}
	if n.format != "" {
		if err := formats[n.format](s); err != nil {
			report("format", "%s is not valid %s: %v", quote(s), n.format, err)
		}
	}
}

// typeOf names the JSON type of v ("number" for every number).
func typeOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("unsupported Go type %T", v)
}

func hasType(v any, types []string) bool {
	t := typeOf(v)
	if slices.Contains(types, t) {
		return true
	}
	if num, ok := v.(json.Number); ok && slices.Contains(types, "integer") {
		d, err := number(num)
		return err == nil && d.isInteger()
	}
	return false
}

// equal is JSON equality: numbers by value, objects regardless of order.
func equal(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		dx, errX := number(x)
		dy, errY := number(y)
		return errX == nil && errY == nil && dx.cmp(dy) == 0
	case []any:
		y, ok := b.([]any)
		return ok && slices.EqualFunc(x, y, equal)
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, vx := range x {
			vy, ok := y[k]
			if !ok || !equal(vx, vy) {
				return false
			}
		}
		return true
	case nil, bool, string:
		return a == b
	}
	return false
}

// quote writes a string between single quotes, escaped as Go would.
func quote(s string) string {
	q := strconv.Quote(s)
	q = strings.ReplaceAll(q[1:len(q)-1], `\"`, `"`)
	return "'" + strings.ReplaceAll(q, "'", `\'`) + "'"
}

// quoteValue writes a JSON value for a message: strings quoted, others
// as JSON.
func quoteValue(v any) string {
	if s, ok := v.(string); ok {
		return quote(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// escape and unescape a JSON pointer token (RFC 6901).
func escape(token string) string {
	return strings.ReplaceAll(strings.ReplaceAll(token, "~", "~0"), "/", "~1")
}

func unescape(token string) string {
	return strings.ReplaceAll(strings.ReplaceAll(token, "~1", "/"), "~0", "~")
}
