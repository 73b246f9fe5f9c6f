package wfrunner

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/jitpipeline/jit/internal/local/gcp/wfexpr"
)

// tmpl is a YAML value whose full-"${…}" scalars are evaluated when the step
// runs: nil (YAML null), a literal (*litT), an expression (*exprT), a list
// (*listT) or a map (*mapT, in YAML order so evaluation order is stable).
type tmpl any

type litT struct{ v any }
type exprT struct{ e *wfexpr.Expr }
type listT struct{ items []tmpl }
type mapT struct{ entries []mapEntry }
type mapEntry struct {
	key any // string, or *exprT for a dynamic key
	val tmpl
}

// tmpl converts a YAML node, parsing and checking every expression.
func (l *loader) tmpl(step string, n *yaml.Node) tmpl {
	switch n.Kind {
	case yaml.AliasNode:
		return l.tmpl(step, n.Alias)
	case yaml.ScalarNode:
		if n.Tag == "!!str" || n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			return l.strTmpl(step, n.Line, n.Value)
		}
		var v any
		if err := n.Decode(&v); err != nil {
			l.errf(step, n.Line, "bad value %q: %v", n.Value, err)
			return &litT{}
		}
		switch x := v.(type) {
		case int:
			return &litT{int64(x)}
		case uint64, int64:
			l.errf(step, n.Line, "integer %q out of range", n.Value)
			return &litT{}
		case string:
			return l.strTmpl(step, n.Line, x)
		default:
			return &litT{x}
		}
	case yaml.SequenceNode:
		lt := &listT{}
		for _, c := range n.Content {
			lt.items = append(lt.items, l.tmpl(step, c))
		}
		return lt
	case yaml.MappingNode:
		mt := &mapT{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			var key any = k.Value
			if wfexpr.IsExpression(k.Value) {
				if e, ok := l.parseExpr(step, k.Line, k.Value).(*exprT); ok {
					key = e
				}
			}
			mt.entries = append(mt.entries, mapEntry{key: key, val: l.tmpl(step, n.Content[i+1])})
		}
		return mt
	}
	l.errf(step, n.Line, "unsupported YAML value")
	return &litT{}
}

func (l *loader) strTmpl(step string, line int, s string) tmpl {
	if wfexpr.IsExpression(s) {
		return l.parseExpr(step, line, s)
	}
	return &litT{s}
}

func (l *loader) parseExpr(step string, line int, s string) tmpl {
	e, err := wfexpr.Parse(s[2 : len(s)-1])
	if err != nil {
		l.errf(step, line, "bad expression %s: %v", s, err)
		return &litT{}
	}
	l.checkFuncs(step, line, e)
	return &exprT{e}
}

// evalTmpl evaluates a template in env; the result is always a fresh value.
func evalTmpl(t tmpl, env wfexpr.Env) (any, error) {
	switch x := t.(type) {
	case nil:
		return nil, nil
	case *litT:
		return x.v, nil
	case *exprT:
		v, err := x.e.Eval(env)
		if err != nil {
			return nil, err
		}
		return wfexpr.Copy(v), nil
	case *listT:
		out := make([]any, 0, len(x.items))
		for _, it := range x.items {
			v, err := evalTmpl(it, env)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case *mapT:
		out := make(map[string]any, len(x.entries))
		for _, e := range x.entries {
			key, ok := e.key.(string)
			if !ok {
				kv, err := evalTmpl(e.key, env)
				if err != nil {
					return nil, err
				}
				if key, ok = kv.(string); !ok {
					return nil, newError("TypeError", fmt.Sprintf("map key must be a string, got %s", wfexpr.TypeName(kv)))
				}
			}
			v, err := evalTmpl(e.val, env)
			if err != nil {
				return nil, err
			}
			out[key] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("internal: unknown template %T", t)
}

// path is an assignment target: a root variable with .field and [expr]
// selectors, as in `a.b[0]["c"]` (Workflows syntax reference, "assign").
type path struct {
	root string
	segs []pathSeg
	src  string
}

type pathSeg struct {
	field string       // .field
	expr  *wfexpr.Expr // [expr]
}

func parsePath(s string) (*path, error) {
	p := &path{src: s}
	i := 0
	ident := func() string {
		start := i
		for i < len(s) && (s[i] == '_' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || i > start && s[i] >= '0' && s[i] <= '9') {
			i++
		}
		return s[start:i]
	}
	s = strings.TrimSpace(s)
	p.root = ident()
	if p.root == "" {
		return nil, fmt.Errorf("must start with a variable name")
	}
	for i < len(s) {
		switch s[i] {
		case '.':
			i++
			f := ident()
			if f == "" {
				return nil, fmt.Errorf("missing field name after '.'")
			}
			p.segs = append(p.segs, pathSeg{field: f})
		case '[':
			depth, start := 0, i+1
			var quote byte
			for ; i < len(s); i++ {
				c := s[i]
				if quote != 0 {
					switch c {
					case '\\':
						i++
					case quote:
						quote = 0
					}
					continue
				}
				if c == '"' || c == '\'' {
					quote = c
				} else if c == '[' {
					depth++
				} else if c == ']' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unclosed '['")
			}
			e, err := wfexpr.Parse(s[start:i])
			if err != nil {
				return nil, err
			}
			i++
			p.segs = append(p.segs, pathSeg{expr: e})
		default:
			return nil, fmt.Errorf("unexpected %q", s[i])
		}
	}
	return p, nil
}

// Journal encoding. Plain JSON would turn 3.0 into 3 and bytes into strings,
// and a replayed execution must see exactly the values it saw the first
// time, so doubles that look like integers and bytes are tagged.
const (
	tagFloat = "$wf.double"
	tagBytes = "$wf.bytes"
)

func toStored(v any) any {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && !math.IsInf(x, 0) {
			return map[string]any{tagFloat: strconv.FormatFloat(x, 'g', -1, 64)}
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return map[string]any{tagFloat: strconv.FormatFloat(x, 'g', -1, 64)}
		}
		return x
	case []byte:
		return map[string]any{tagBytes: base64.StdEncoding.EncodeToString(x)}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toStored(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = toStored(e)
		}
		return out
	}
	return v
}

func fromStored(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i, e := range x {
			x[i] = fromStored(e)
		}
		return x
	case map[string]any:
		if len(x) == 1 {
			if s, ok := x[tagFloat].(string); ok {
				f, _ := strconv.ParseFloat(s, 64)
				return f
			}
			if s, ok := x[tagBytes].(string); ok {
				b, _ := base64.StdEncoding.DecodeString(s)
				return b
			}
		}
		for k, e := range x {
			x[k] = fromStored(e)
		}
		return x
	}
	return v
}

// storedValue is a Workflows value that survives a JSON round trip exactly.
type storedValue struct{ v any }

func (s storedValue) MarshalJSON() ([]byte, error) { return json.Marshal(toStored(s.v)) }

func (s *storedValue) UnmarshalJSON(b []byte) error {
	v, err := decodeJSON(b)
	if err != nil {
		return err
	}
	s.v = fromStored(v)
	return nil
}

// decodeJSON decodes JSON into Workflows values: integers become int64 and
// other numbers float64 (json.Number first, converted by fromStored).
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	return numbers(v), nil
}

func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil && !strings.ContainsAny(string(x), ".eE") {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	}
	return v
}

// encodeJSON renders a Workflows value as JSON for results and error
// payloads; bytes cannot be represented and are a TypeError, as in json.encode.
func encodeJSON(v any) ([]byte, error) {
	if err := checkJSONable(v); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(plainJSON(v)); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func checkJSONable(v any) error {
	switch x := v.(type) {
	case []byte:
		return newError("TypeError", "bytes cannot be encoded as JSON")
	case []any:
		for _, e := range x {
			if err := checkJSONable(e); err != nil {
				return err
			}
		}
	case map[string]any:
		for _, e := range x {
			if err := checkJSONable(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// plainJSON keeps doubles recognisable (3.0 stays 3.0) in JSON output.
func plainJSON(v any) any {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e21 {
			return json.RawMessage(strconv.FormatFloat(x, 'f', 1, 64))
		}
		return x
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plainJSON(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = plainJSON(e)
		}
		return out
	}
	return v
}

// sortedMapKeys returns the keys of a map in a stable order, which keeps
// iteration, and so replay, deterministic.
func sortedMapKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
