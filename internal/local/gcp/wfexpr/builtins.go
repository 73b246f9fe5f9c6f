package wfexpr

import (
	"encoding/base64"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time.format takes tz database names; do not depend on the host's zoneinfo
	"unicode/utf8"
)

// builtin is a function wfexpr implements. Arity is checked at Parse time,
// as Workflows checks it at deploy time.
type builtin struct {
	minArgs, maxArgs int
	fn               func(args []any) (any, error)
}

func (b *builtin) arity() string {
	plural := func(n int) string {
		if n == 1 {
			return "1 argument"
		}
		return strconv.Itoa(n) + " arguments"
	}
	if b.minArgs == b.maxArgs {
		return plural(b.minArgs)
	}
	return strconv.Itoa(b.minArgs) + " to " + plural(b.maxArgs)
}

// builtins holds the expression helpers and the non-blocking standard
// library functions; sys.*, http.*, events.*, uuid.*, hash.* and
// subworkflows are left to Env.Call.
var builtins map[string]*builtin

func init() {
	builtins = map[string]*builtin{
		// Expression helpers:
		// https://cloud.google.com/workflows/docs/reference/stdlib/expression-helpers
		"default":  {2, 2, fnDefault},
		"if":       {3, 3, fnIf},
		"len":      {1, 1, fnLen},
		"keys":     {1, 1, fnKeys},
		"int":      {1, 1, fnInt},
		"double":   {1, 1, fnDouble},
		"string":   {1, 1, fnString},
		"get_type": {1, 1, func(a []any) (any, error) { return TypeName(a[0]), nil }},

		"map.get":          {2, 2, fnMapGet},
		"map.merge":        {2, 2, fnMapMerge},
		"map.merge_nested": {2, 2, fnMapMergeNested},
		"map.delete":       {2, 2, fnMapDelete},
		"list.concat":      {2, 2, fnListConcat},
		"list.prepend":     {2, 2, fnListPrepend},

		"math.abs":   {1, 1, fnAbs},
		"math.floor": {1, 1, fnFloor},
		"math.max":   {2, 2, func(a []any) (any, error) { return minMax(a, 1) }},
		"math.min":   {2, 2, func(a []any) (any, error) { return minMax(a, -1) }},

		"text.encode":            {1, 2, fnTextEncode},
		"text.decode":            {1, 2, fnTextDecode},
		"text.split":             {2, 2, fnSplit},
		"text.substring":         {3, 3, fnSubstring},
		"text.to_lower":          {1, 1, func(a []any) (any, error) { return strFn("text.to_lower", a[0], strings.ToLower) }},
		"text.to_upper":          {1, 1, func(a []any) (any, error) { return strFn("text.to_upper", a[0], strings.ToUpper) }},
		"text.replace_all":       {3, 3, fnReplaceAll},
		"text.replace_all_regex": {3, 3, fnReplaceAllRegex},
		"text.match_regex":       {2, 2, fnMatchRegex},

		"json.encode":           {1, 2, fnJSONEncode},
		"json.encode_to_string": {1, 2, fnJSONEncodeToString},
		"json.decode":           {1, 1, fnJSONDecode},

		"base64.encode": {1, 2, fnBase64Encode},
		"base64.decode": {1, 2, fnBase64Decode},

		"time.format": {1, 2, fnTimeFormat},
		"time.parse":  {1, 1, fnTimeParse},
	}
}

func typeErr(fn string, want string, got any) *Error {
	return newError(TagTypeError, "%s: expected %s, got %s", fn, want, TypeName(got))
}

func fnDefault(a []any) (any, error) {
	if a[0] == nil {
		return a[1], nil
	}
	return a[0], nil
}

// fnIf returns ifTrue when the condition is true and ifFalse when it is false
// or null. Decision: both branches are evaluated before the call, like every
// other function argument, so a failing branch fails even when unused.
func fnIf(a []any) (any, error) {
	switch c := a[0].(type) {
	case nil:
		return a[2], nil
	case bool:
		if c {
			return a[1], nil
		}
		return a[2], nil
	}
	return nil, typeErr("if", "a boolean condition", a[0])
}

// fnLen counts list elements, map entries or string characters (code points).
func fnLen(a []any) (any, error) {
	switch v := a[0].(type) {
	case string:
		return int64(utf8.RuneCountInString(v)), nil
	case []any:
		return int64(len(v)), nil
	case map[string]any:
		return int64(len(v)), nil
	}
	return nil, typeErr("len", "a list, map or string", a[0])
}

// fnKeys returns a map's keys. Decision: sorted, since Go maps have no order
// and tests must be deterministic; no workflow should rely on key order.
func fnKeys(a []any) (any, error) {
	m, ok := a[0].(map[string]any)
	if !ok {
		return nil, typeErr("keys", "a map", a[0])
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	out := make([]any, len(ks))
	for i, k := range ks {
		out[i] = k
	}
	return out, nil
}

// fnInt converts a string or a double (truncating toward zero) to an integer.
func fnInt(a []any) (any, error) {
	switch v := a[0].(type) {
	case int64:
		return v, nil
	case float64:
		if math.IsNaN(v) || v >= 0x1p63 || v < -0x1p63 {
			return nil, newError(TagValueError, "int: %s is out of the integer range", formatDouble(v))
		}
		return int64(v), nil
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return nil, newError(TagValueError, "int: cannot convert %q to an integer", v)
		}
		return i, nil
	}
	return nil, typeErr("int", "a string or a double", a[0])
}

// fnDouble converts a string or an integer to a double.
func fnDouble(a []any) (any, error) {
	switch v := a[0].(type) {
	case float64:
		return v, nil
	case int64:
		return float64(v), nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, newError(TagValueError, "double: cannot convert %q to a double", v)
		}
		return f, nil
	}
	return nil, typeErr("double", "a string or an integer", a[0])
}

// fnString converts an integer, double or boolean to a string.
func fnString(a []any) (any, error) {
	switch v := a[0].(type) {
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return formatDouble(v), nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	return nil, typeErr("string", "an integer, double or boolean", a[0])
}

// fnMapGet is a safe lookup: null when the input is not a map or a key is
// missing; keys may be a list for a nested lookup; a key that is not a
// string (or list of strings) is a TypeError
// (https://cloud.google.com/workflows/docs/reference/stdlib/map/get).
func fnMapGet(a []any) (any, error) {
	var path []any
	switch k := a[1].(type) {
	case string:
		path = []any{k}
	case []any:
		path = k
	default:
		return nil, typeErr("map.get", "a string or a list of strings as key", a[1])
	}
	for _, k := range path {
		if _, ok := k.(string); !ok {
			return nil, typeErr("map.get", "a string or a list of strings as key", k)
		}
	}
	cur := a[0]
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, nil
		}
		if cur, ok = m[k.(string)]; !ok {
			return nil, nil
		}
	}
	return normalize(cur), nil
}

func fnMapMerge(a []any) (any, error) {
	m1, ok1 := a[0].(map[string]any)
	m2, ok2 := a[1].(map[string]any)
	if !ok1 || !ok2 {
		return nil, newError(TagTypeError, "map.merge: expected two maps, got %s and %s", TypeName(a[0]), TypeName(a[1]))
	}
	out := make(map[string]any, len(m1)+len(m2))
	for k, v := range m1 {
		out[k] = v
	}
	for k, v := range m2 {
		out[k] = v
	}
	return out, nil
}

func fnMapMergeNested(a []any) (any, error) {
	m1, ok1 := a[0].(map[string]any)
	m2, ok2 := a[1].(map[string]any)
	if !ok1 || !ok2 {
		return nil, newError(TagTypeError, "map.merge_nested: expected two maps, got %s and %s", TypeName(a[0]), TypeName(a[1]))
	}
	return mergeNested(m1, m2), nil
}

func mergeNested(m1, m2 map[string]any) map[string]any {
	out := make(map[string]any, len(m1)+len(m2))
	for k, v := range m1 {
		out[k] = v
	}
	for k, v := range m2 {
		if sub2, ok := v.(map[string]any); ok {
			if sub1, ok := out[k].(map[string]any); ok {
				out[k] = mergeNested(sub1, sub2)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func fnMapDelete(a []any) (any, error) {
	m, ok := a[0].(map[string]any)
	if !ok {
		return nil, typeErr("map.delete", "a map", a[0])
	}
	k, ok := a[1].(string)
	if !ok {
		return nil, typeErr("map.delete", "a string key", a[1])
	}
	out := make(map[string]any, len(m))
	for kk, v := range m {
		if kk != k {
			out[kk] = v
		}
	}
	return out, nil
}

// fnListConcat returns a copy of the list with the value appended; it does
// not join two lists.
func fnListConcat(a []any) (any, error) {
	l, ok := a[0].([]any)
	if !ok {
		return nil, typeErr("list.concat", "a list", a[0])
	}
	out := make([]any, 0, len(l)+1)
	return append(append(out, l...), a[1]), nil
}

// fnListPrepend returns a copy of the list with the value inserted first.
func fnListPrepend(a []any) (any, error) {
	l, ok := a[0].([]any)
	if !ok {
		return nil, typeErr("list.prepend", "a list", a[0])
	}
	out := make([]any, 0, len(l)+1)
	return append(append(out, a[1]), l...), nil
}

func fnAbs(a []any) (any, error) {
	switch v := a[0].(type) {
	case int64:
		if v == math.MinInt64 {
			return nil, overflow()
		}
		if v < 0 {
			return -v, nil
		}
		return v, nil
	case float64:
		return math.Abs(v), nil
	}
	return nil, typeErr("math.abs", "a number", a[0])
}

// fnFloor returns the largest integer not greater than x, as an integer.
func fnFloor(a []any) (any, error) {
	switch v := a[0].(type) {
	case int64:
		return v, nil
	case float64:
		f := math.Floor(v)
		if math.IsNaN(f) || f >= 0x1p63 || f < -0x1p63 {
			return nil, newError(TagValueError, "math.floor: %s is out of the integer range", formatDouble(v))
		}
		return int64(f), nil
	}
	return nil, typeErr("math.floor", "a number", a[0])
}

// minMax returns the larger (sign 1) or smaller (sign -1) argument: an
// integer when both are integers, otherwise a double ("If both numbers are
// integers, returns an integer; otherwise, a floating-point number" —
// https://cloud.google.com/workflows/docs/reference/stdlib/math/max and
// .../math/min).
func minMax(a []any, sign int) (any, error) {
	name := "math.max"
	if sign < 0 {
		name = "math.min"
	}
	x, ok := toFloat(a[0])
	if !ok {
		return nil, typeErr(name, "numbers", a[0])
	}
	y, ok := toFloat(a[1])
	if !ok {
		return nil, typeErr(name, "numbers", a[1])
	}
	xi, xInt := a[0].(int64)
	yi, yInt := a[1].(int64)
	if xInt && yInt {
		if (yi > xi) == (sign > 0) && yi != xi {
			return yi, nil
		}
		return xi, nil
	}
	if (y > x) == (sign > 0) && y != x {
		return y, nil
	}
	return x, nil
}

func strFn(name string, v any, f func(string) string) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, typeErr(name, "a string", v)
	}
	return f(s), nil
}

// charset checks the optional charset argument. Decision: only UTF-8 is
// supported; other IANA names raise ValueError, which the documentation
// lists for an unsupported charset.
func charset(name string, a []any) error {
	if len(a) < 2 {
		return nil
	}
	cs, ok := a[1].(string)
	if !ok {
		return typeErr(name, "a charset name", a[1])
	}
	switch strings.ToUpper(cs) {
	case "UTF-8", "UTF8":
		return nil
	}
	return newError(TagValueError, "%s: unsupported charset %q", name, cs)
}

func fnTextEncode(a []any) (any, error) {
	s, ok := a[0].(string)
	if !ok {
		return nil, typeErr("text.encode", "a string", a[0])
	}
	if err := charset("text.encode", a); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// fnTextDecode decodes bytes; each undecodable byte becomes U+FFFD
// (https://cloud.google.com/workflows/docs/reference/stdlib/text/decode).
func fnTextDecode(a []any) (any, error) {
	b, ok := a[0].([]byte)
	if !ok {
		return nil, typeErr("text.decode", "bytes", a[0])
	}
	if err := charset("text.decode", a); err != nil {
		return nil, err
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), nil
}

// fnSplit splits at every separator. Decision: an empty separator is a
// ValueError.
func fnSplit(a []any) (any, error) {
	s, ok := a[0].(string)
	if !ok {
		return nil, typeErr("text.split", "a string", a[0])
	}
	sep, ok := a[1].(string)
	if !ok {
		return nil, typeErr("text.split", "a string separator", a[1])
	}
	if sep == "" {
		return nil, newError(TagValueError, "text.split: empty separator")
	}
	parts := strings.Split(s, sep)
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out, nil
}

// fnSubstring takes zero-based character indexes, start inclusive and end
// exclusive; a negative index counts from the end and out-of-range indexes
// are clamped (https://cloud.google.com/workflows/docs/reference/stdlib/text/substring).
func fnSubstring(a []any) (any, error) {
	s, ok := a[0].(string)
	if !ok {
		return nil, typeErr("text.substring", "a string", a[0])
	}
	start, ok1 := a[1].(int64)
	end, ok2 := a[2].(int64)
	if !ok1 || !ok2 {
		return nil, newError(TagTypeError, "text.substring: indexes must be integers, got %s and %s", TypeName(a[1]), TypeName(a[2]))
	}
	runes := []rune(s)
	n := int64(len(runes))
	clamp := func(i int64) int64 {
		if i < 0 {
			i += n
		}
		return max(0, min(i, n))
	}
	start, end = clamp(start), clamp(end)
	if start >= end {
		return "", nil
	}
	return string(runes[start:end]), nil
}

func threeStrings(name string, a []any) (string, string, string, error) {
	for _, v := range a {
		if _, ok := v.(string); !ok {
			return "", "", "", typeErr(name, "strings", v)
		}
	}
	return a[0].(string), a[1].(string), a[2].(string), nil
}

func fnReplaceAll(a []any) (any, error) {
	s, old, repl, err := threeStrings("text.replace_all", a)
	if err != nil {
		return nil, err
	}
	return strings.ReplaceAll(s, old, repl), nil
}

// fnReplaceAllRegex uses RE2 and no backreferences in the replacement
// (https://cloud.google.com/workflows/docs/reference/stdlib/text/replace_all_regex).
func fnReplaceAllRegex(a []any) (any, error) {
	s, expr, repl, err := threeStrings("text.replace_all_regex", a)
	if err != nil {
		return nil, err
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, newError(TagValueError, "text.replace_all_regex: invalid regular expression: %v", err)
	}
	return re.ReplaceAllLiteralString(s, repl), nil
}

// fnMatchRegex reports whether the RE2 expression matches anywhere in s.
func fnMatchRegex(a []any) (any, error) {
	s, ok1 := a[0].(string)
	expr, ok2 := a[1].(string)
	if !ok1 || !ok2 {
		return nil, newError(TagTypeError, "text.match_regex: expected strings, got %s and %s", TypeName(a[0]), TypeName(a[1]))
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, newError(TagValueError, "text.match_regex: invalid regular expression: %v", err)
	}
	return re.MatchString(s), nil
}

func fnJSONEncode(a []any) (any, error) {
	opt, err := indentOption(a)
	if err != nil {
		return nil, err
	}
	return encodeJSON(a[0], opt)
}

func fnJSONEncodeToString(a []any) (any, error) {
	opt, err := indentOption(a)
	if err != nil {
		return nil, err
	}
	b, err := encodeJSON(a[0], opt)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// indentOption reads json.encode's indent argument: a boolean, or a map
// with optional string "prefix" (default "") and "indent" (default four
// spaces) (https://cloud.google.com/workflows/docs/reference/stdlib/json/encode).
func indentOption(a []any) (*indent, error) {
	if len(a) < 2 {
		return nil, nil
	}
	switch v := a[1].(type) {
	case nil:
		return nil, nil
	case bool:
		if !v {
			return nil, nil
		}
		return &indent{step: "    "}, nil
	case map[string]any:
		opt := &indent{step: "    "}
		for k, x := range v {
			s, ok := x.(string)
			if !ok || (k != "prefix" && k != "indent") {
				return nil, newError(TagTypeError, "json.encode: indent option %q must be a string prefix or indent", k)
			}
			if k == "prefix" {
				opt.prefix = s
			} else {
				opt.step = s
			}
		}
		return opt, nil
	}
	return nil, typeErr("json.encode", "a boolean or a map as indent", a[1])
}

func fnJSONDecode(a []any) (any, error) {
	var data []byte
	switch v := a[0].(type) {
	case []byte:
		data = []byte(strings.ToValidUTF8(string(v), "\uFFFD"))
	case string:
		data = []byte(v)
	default:
		return nil, typeErr("json.decode", "bytes or a string", a[0])
	}
	return DecodeJSON(data)
}

// base64 functions take an optional padding flag, default true.
func padding(name string, a []any) (bool, error) {
	if len(a) < 2 {
		return true, nil
	}
	p, ok := a[1].(bool)
	if !ok {
		return false, typeErr(name, "a boolean padding flag", a[1])
	}
	return p, nil
}

func fnBase64Encode(a []any) (any, error) {
	b, ok := a[0].([]byte)
	if !ok {
		// Decision: strings must be text.encode'd first, as documented samples do.
		return nil, typeErr("base64.encode", "bytes", a[0])
	}
	pad, err := padding("base64.encode", a)
	if err != nil {
		return nil, err
	}
	if pad {
		return base64.StdEncoding.EncodeToString(b), nil
	}
	return base64.RawStdEncoding.EncodeToString(b), nil
}

func fnBase64Decode(a []any) (any, error) {
	s, ok := a[0].(string)
	if !ok {
		return nil, typeErr("base64.decode", "a string", a[0])
	}
	pad, err := padding("base64.decode", a)
	if err != nil {
		return nil, err
	}
	enc := base64.StdEncoding
	if !pad {
		enc = base64.RawStdEncoding
	}
	b, err := enc.Strict().DecodeString(s)
	if err != nil {
		return nil, newError(TagValueError, "base64.decode: invalid base64 data: %v", err)
	}
	return b, nil
}

// fnTimeFormat formats seconds since the epoch as ISO 8601 with exactly six
// fractional digits, "Z" for UTC, or the offset of the tz database zone
// given: time.format(1720788633) is "2024-07-12T12:50:33.000000Z" and with
// "Europe/Paris" "2024-07-12T14:50:33.000000+02:00"
// (https://cloud.google.com/workflows/docs/reference/stdlib/time/format).
func fnTimeFormat(a []any) (any, error) {
	secs, ok := toFloat(a[0])
	if !ok {
		return nil, typeErr("time.format", "a number of seconds", a[0])
	}
	var micros int64
	switch v := a[0].(type) {
	case int64:
		if v > math.MaxInt64/1_000_000 || v < math.MinInt64/1_000_000 {
			return nil, newError(TagValueError, "time.format: %d is out of range", v)
		}
		micros = v * 1e6
	default:
		m := math.Round(secs * 1e6)
		if math.IsNaN(m) || m >= 0x1p63 || m < -0x1p63 {
			return nil, newError(TagValueError, "time.format: %s is out of range", formatDouble(secs))
		}
		micros = int64(m)
	}
	loc := time.UTC
	if len(a) > 1 {
		tz, ok := a[1].(string)
		if !ok {
			return nil, typeErr("time.format", "a timezone name", a[1])
		}
		if tz != "" {
			l, err := time.LoadLocation(tz)
			if err != nil {
				return nil, newError(TagValueError, "time.format: unknown timezone %q", tz)
			}
			loc = l
		}
	}
	t := time.UnixMicro(micros).In(loc)
	if t.Year() < 1 || t.Year() > 9999 {
		return nil, newError(TagValueError, "time.format: %s is out of range", formatDouble(secs))
	}
	return t.Format("2006-01-02T15:04:05.000000Z07:00"), nil
}

// rfc3339 is the RFC 3339 section 5.6 date-time with at most six fractional
// digits, as time.parse documents "up to a microsecond precision".
var rfc3339 = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})$`)

// fnTimeParse returns seconds since the epoch as a double; a non-string is a
// TypeError and anything not RFC 3339 a ValueError
// (https://cloud.google.com/workflows/docs/reference/stdlib/time/parse).
// Decision: more than six fractional digits is a ValueError.
func fnTimeParse(a []any) (any, error) {
	s, ok := a[0].(string)
	if !ok {
		return nil, typeErr("time.parse", "a string", a[0])
	}
	if !rfc3339.MatchString(s) {
		return nil, newError(TagValueError, "time.parse: %q is not an RFC 3339 timestamp", s)
	}
	norm := strings.NewReplacer("t", "T", "z", "Z").Replace(s)
	t, err := time.Parse(time.RFC3339Nano, norm)
	if err != nil {
		return nil, newError(TagValueError, "time.parse: %q is not an RFC 3339 timestamp", s)
	}
	return float64(t.Unix()) + float64(t.Nanosecond()/1000)/1e6, nil
}
