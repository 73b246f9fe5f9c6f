package wfexpr

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

func eval(n node, env Env) (any, error) {
	switch x := n.(type) {
	case *litNode:
		return x.v, nil
	case *identNode:
		if env != nil {
			if v, ok := env.Lookup(x.name); ok {
				return normalize(v), nil
			}
		}
		// Decision: Workflows rejects most undefined names at deploy time;
		// one that slips through to run time raises KeyError here.
		return nil, newError(TagKeyError, "variable %q is not defined", x.name)
	case *memberNode:
		v, err := eval(x.x, env)
		if err != nil {
			return nil, err
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, newError(TagTypeError, "cannot read field %q of %s", x.name, TypeName(v))
		}
		e, ok := m[x.name]
		if !ok {
			return nil, newError(TagKeyError, "key %q not found in map", x.name)
		}
		return normalize(e), nil
	case *indexNode:
		v, err := eval(x.x, env)
		if err != nil {
			return nil, err
		}
		idx, err := eval(x.idx, env)
		if err != nil {
			return nil, err
		}
		return index(v, idx)
	case *callNode:
		return call(x, env)
	case *unaryNode:
		v, err := eval(x.x, env)
		if err != nil {
			return nil, err
		}
		if x.op == tNot {
			b, ok := v.(bool)
			if !ok {
				return nil, newError(TagTypeError, "not requires a boolean, got %s", TypeName(v))
			}
			return !b, nil
		}
		switch n := v.(type) {
		case int64:
			if n == math.MinInt64 {
				return nil, overflow()
			}
			return -n, nil
		case float64:
			return -n, nil
		}
		return nil, newError(TagTypeError, "unary - requires a number, got %s", TypeName(v))
	case *binaryNode:
		return binary(x, env)
	case *listNode:
		l := make([]any, len(x.elems))
		for i, e := range x.elems {
			v, err := eval(e, env)
			if err != nil {
				return nil, err
			}
			l[i] = v
		}
		return l, nil
	case *mapNode:
		m := make(map[string]any, len(x.keys))
		for i, k := range x.keys {
			v, err := eval(x.vals[i], env)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	}
	return nil, fmt.Errorf("wfexpr: unknown node %T", n)
}

// normalize maps the Go integer and float kinds a runner might hand over to
// int64 and float64, so the operators see only Workflows types.
func normalize(v any) any {
	switch n := v.(type) {
	case int:
		return int64(n)
	case int32:
		return int64(n)
	case float32:
		return float64(n)
	}
	return v
}

func index(v, idx any) (any, error) {
	switch c := v.(type) {
	case []any:
		i, ok := idx.(int64)
		if !ok {
			return nil, newError(TagTypeError, "list index must be an integer, got %s", TypeName(idx))
		}
		// Decision: negative indexes are out of range, not offsets from the end.
		if i < 0 || i >= int64(len(c)) {
			return nil, newError(TagIndexError, "list index %d out of range (length %d)", i, len(c))
		}
		return normalize(c[i]), nil
	case map[string]any:
		k, ok := idx.(string)
		if !ok {
			return nil, newError(TagTypeError, "map key must be a string, got %s", TypeName(idx))
		}
		e, ok := c[k]
		if !ok {
			return nil, newError(TagKeyError, "key %q not found in map", k)
		}
		return normalize(e), nil
	}
	return nil, newError(TagTypeError, "cannot index %s", TypeName(v))
}

func call(x *callNode, env Env) (any, error) {
	args := make([]any, len(x.args))
	for i, a := range x.args {
		v, err := eval(a, env)
		if err != nil {
			return nil, err
		}
		args[i] = v
	}
	if x.fn != nil {
		return x.fn.fn(args)
	}
	if env == nil {
		return nil, fmt.Errorf("failed to call %s: %w", x.name, ErrUnknownFunction)
	}
	v, err := env.Call(x.name, args)
	if err != nil {
		var we *Error
		if errors.As(err, &we) {
			return nil, we
		}
		return nil, fmt.Errorf("failed to call %s: %w", x.name, err)
	}
	return normalize(v), nil
}

func binary(x *binaryNode, env Env) (any, error) {
	l, err := eval(x.l, env)
	if err != nil {
		return nil, err
	}
	if x.op == tAnd || x.op == tOr {
		// Logical operators take booleans only (datatypes page, "Logical
		// operators") and short-circuit.
		lb, ok := l.(bool)
		if !ok {
			return nil, newError(TagTypeError, "%s requires booleans, got %s", opText[x.op], TypeName(l))
		}
		if (x.op == tAnd && !lb) || (x.op == tOr && lb) {
			return lb, nil
		}
		r, err := eval(x.r, env)
		if err != nil {
			return nil, err
		}
		rb, ok := r.(bool)
		if !ok {
			return nil, newError(TagTypeError, "%s requires booleans, got %s", opText[x.op], TypeName(r))
		}
		return rb, nil
	}
	r, err := eval(x.r, env)
	if err != nil {
		return nil, err
	}
	switch x.op {
	case tEq:
		return equal(l, r), nil
	case tNe:
		return !equal(l, r), nil
	case tLt, tLe, tGt, tGe:
		return compare(x.op, l, r)
	case tIn:
		return member(l, r)
	case tPlus:
		// Decision: + concatenates only string with string. The datatypes
		// page's conversion table lists string+number as a string; being
		// stricter costs nothing (string() works in both) and never hides a
		// production failure.
		if ls, ok := l.(string); ok {
			if rs, ok := r.(string); ok {
				return ls + rs, nil
			}
		}
	}
	return arith(x.op, l, r)
}

func overflow() *Error {
	// Decision: Workflows integers are 64-bit; overflow raises ValueError
	// rather than wrapping (the documented exception tags have no
	// OverflowError).
	return newError(TagValueError, "integer overflow")
}

func arith(op tokKind, l, r any) (any, error) {
	li, lInt := l.(int64)
	ri, rInt := r.(int64)
	lf, lNum := toFloat(l)
	rf, rNum := toFloat(r)
	if !lNum || !rNum {
		return nil, newError(TagTypeError, "unsupported operand types for %s: %s and %s", opText[op], TypeName(l), TypeName(r))
	}
	if lInt && rInt {
		switch op {
		case tPlus:
			s := li + ri
			if (s > li) != (ri > 0) {
				return nil, overflow()
			}
			return s, nil
		case tMinus:
			d := li - ri
			if (d < li) != (ri > 0) {
				return nil, overflow()
			}
			return d, nil
		case tStar:
			if li == 0 || ri == 0 {
				return int64(0), nil
			}
			p := li * ri
			if p/ri != li || (li == -1 && ri == math.MinInt64) || (ri == -1 && li == math.MinInt64) {
				return nil, overflow()
			}
			return p, nil
		case tSlash:
			if ri == 0 {
				return nil, newError(TagZeroDivisionError, "division by zero")
			}
			return float64(li) / float64(ri), nil // "/" is float division
		case tSlashSlash, tPercent:
			if ri == 0 {
				return nil, newError(TagZeroDivisionError, "integer division or modulo by zero")
			}
			if li == math.MinInt64 && ri == -1 {
				if op == tPercent {
					return int64(0), nil
				}
				return nil, overflow()
			}
			// Floor division and a remainder with the divisor's sign, as
			// "floor division" implies.
			q, m := li/ri, li%ri
			if m != 0 && (m < 0) != (ri < 0) {
				q--
				m += ri
			}
			if op == tPercent {
				return m, nil
			}
			return q, nil
		}
	}
	var f float64
	switch op {
	case tPlus:
		f = lf + rf
	case tMinus:
		f = lf - rf
	case tStar:
		f = lf * rf
	case tSlash:
		if rf == 0 {
			return nil, newError(TagZeroDivisionError, "division by zero")
		}
		f = lf / rf
	case tSlashSlash, tPercent:
		if rf == 0 {
			return nil, newError(TagZeroDivisionError, "float division or modulo by zero")
		}
		m := math.Mod(lf, rf)
		if m != 0 && (m < 0) != (rf < 0) {
			m += rf
		}
		if op == tPercent {
			f = m
		} else {
			f = math.Floor((lf - m) / rf)
		}
	default:
		return nil, fmt.Errorf("wfexpr: unknown operator %v", op)
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		if !math.IsInf(lf, 0) && !math.IsInf(rf, 0) && !math.IsNaN(lf) && !math.IsNaN(rf) {
			// Decision: doubles that overflow raise ValueError, as integers do;
			// infinities cannot be JSON-encoded anyway.
			return nil, newError(TagValueError, "double overflow")
		}
	}
	return f, nil
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func compare(op tokKind, l, r any) (any, error) {
	var c int
	switch lv := l.(type) {
	case string:
		rv, ok := r.(string)
		if !ok {
			return nil, newError(TagTypeError, "cannot compare %s and %s", TypeName(l), TypeName(r))
		}
		c = strings.Compare(lv, rv)
	default:
		li, lInt := l.(int64)
		ri, rInt := r.(int64)
		lf, lNum := toFloat(l)
		rf, rNum := toFloat(r)
		switch {
		case lInt && rInt:
			c = cmpOrdered(li, ri)
		case lNum && rNum:
			if math.IsNaN(lf) || math.IsNaN(rf) {
				return false, nil
			}
			c = cmpOrdered(lf, rf)
		default:
			return nil, newError(TagTypeError, "cannot compare %s and %s", TypeName(l), TypeName(r))
		}
	}
	switch op {
	case tLt:
		return c < 0, nil
	case tLe:
		return c <= 0, nil
	case tGt:
		return c > 0, nil
	}
	return c >= 0, nil
}

func cmpOrdered[T int64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// member implements `x in container`: list membership by equality, or key
// presence in a map (expression-helpers page, in()).
func member(x, container any) (any, error) {
	switch c := container.(type) {
	case []any:
		for _, e := range c {
			if equal(x, e) {
				return true, nil
			}
		}
		return false, nil
	case map[string]any:
		k, ok := x.(string)
		if !ok {
			return nil, newError(TagTypeError, "map keys are strings, got %s", TypeName(x))
		}
		_, ok = c[k]
		return ok, nil
	}
	// Decision: in is defined for lists and maps only, not substrings.
	return nil, newError(TagTypeError, "in requires a list or a map, got %s", TypeName(container))
}

// equal is deep equality; integers and doubles compare by numeric value and
// values of different types are unequal rather than an error.
func equal(a, b any) bool {
	a, b = normalize(a), normalize(b)
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case int64:
		switch y := b.(type) {
		case int64:
			return x == y
		case float64:
			return float64(x) == y && y >= -0x1p63 && y < 0x1p63 && int64(y) == x
		}
		return false
	case float64:
		switch y := b.(type) {
		case float64:
			return x == y
		case int64:
			return equal(y, x)
		}
		return false
	case string:
		y, ok := b.(string)
		return ok && x == y
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equal(v, w) {
				return false
			}
		}
		return true
	}
	return false
}

// formatDouble renders a double the way string() and json.encode do.
// Decision (undocumented): the shortest representation that round-trips,
// always with a decimal point or an exponent so it reads back as a double:
// 2.0, 0.1, 1e+16, 1.5e-05.
func formatDouble(f float64) string {
	abs := math.Abs(f)
	if abs != 0 && (abs >= 1e16 || abs < 1e-4) {
		return strconv.FormatFloat(f, 'e', -1, 64)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsRune(s, '.') {
		s += ".0"
	}
	return s
}

// writeLiteral prints a literal so that the lexer reads it back unchanged.
func writeLiteral(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		s := strconv.FormatFloat(x, 'f', -1, 64)
		if !strings.ContainsRune(s, '.') {
			s += ".0"
		}
		b.WriteString(s)
	case string:
		writeString(b, x)
	}
}

// writeString writes a double-quoted, JSON-escaped string.
func writeString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 || r == 0x7f || r == 0x2028 || r == 0x2029 {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}
