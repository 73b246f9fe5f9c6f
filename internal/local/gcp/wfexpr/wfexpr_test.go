package wfexpr

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testEnv serves variables from a map and implements sys.now and
// sys.get_env the way the runner will, to exercise Env.Call.
type testEnv struct{ vars map[string]any }

func (e testEnv) Lookup(name string) (any, bool) {
	v, ok := e.vars[name]
	return v, ok
}

func (e testEnv) Call(name string, args []any) (any, error) {
	switch name {
	case "sys.now":
		return 1720788633.5, nil
	case "sys.get_env":
		if len(args) == 1 && args[0] == "GOOGLE_CLOUD_PROJECT_ID" {
			return "demo-project", nil
		}
		return nil, &Error{Tags: []string{TagKeyError}, Message: "no such env"}
	case "fail.plain":
		return nil, errors.New("runner is broken")
	}
	return nil, fmt.Errorf("%s: %w", name, ErrUnknownFunction)
}

func baseVars() map[string]any {
	return map[string]any{
		"i":     int64(7),
		"n":     int64(-7),
		"d":     2.5,
		"s":     "héllo",
		"t":     true,
		"f":     false,
		"nul":   nil,
		"l":     []any{int64(1), "two", 3.0},
		"m":     map[string]any{"a": int64(1), "b": map[string]any{"c": "deep"}, "n": nil},
		"bs":    []byte("hi"),
		"max":   int64(math.MaxInt64),
		"min":   int64(math.MinInt64),
		"goint": 5, // a Go int from the runner is treated as a Workflows integer
		"event": map[string]any{"data": map[string]any{"message": map[string]any{
			"data": "eyJ1c2VyIjoiYWxpY2VAZXhhbXBsZS5jb20iLCJyb2xlIjoicm9sZXMvdmlld2VyIn0=",
		}}},
	}
}

type evalCase struct {
	name    string
	src     string
	want    any
	wantTag string // exception tag expected instead of a value
}

// Facts cited below (docs/google-cloud.md §4 lists the Workflows syntax pages; the
// exact semantics come from these Google documentation pages):
//
//	[types]   https://cloud.google.com/workflows/docs/reference/syntax/datatypes
//	          (64-bit integers, doubles, bytes; logical operators take
//	          booleans only, lower- or upper-case; order of operations)
//	[expr]    https://cloud.google.com/workflows/docs/reference/syntax/expressions
//	          (+ - * / % //, "/" is float division, "//" floor division,
//	          object.field, object["field"], list[index])
//	[helpers] https://cloud.google.com/workflows/docs/reference/stdlib/expression-helpers
//	          (default, if, in, keys, len, int, double, string)
//	[map.get] https://cloud.google.com/workflows/docs/reference/stdlib/map/get
//	[json]    .../stdlib/json/encode, json/decode (ValueError for bytes / bad JSON)
//	[text]    .../stdlib/text/substring, text/decode, text/replace_all_regex
//	[time]    .../stdlib/time/format, time/parse
func TestEval(t *testing.T) {
	t.Parallel()
	cases := []evalCase{
		// Literals [types], [expr].
		{name: "int", src: "42", want: int64(42)},
		{name: "double", src: "4.25", want: 4.25},
		{name: "double_string", src: `"a\"b\n"`, want: "a\"b\n"},
		{name: "single_quoted", src: `'it\'s'`, want: "it's"},
		{name: "unicode_escape", src: `"\u00e9\ud83d\ude00"`, want: "é😀"},
		{name: "true_variants", src: "true and True and TRUE", want: true},
		{name: "false_variants", src: "false or False or FALSE", want: false},
		{name: "null", src: "null", want: nil},
		{name: "list_literal", src: `[1, "a", [true]]`, want: []any{int64(1), "a", []any{true}}},
		{name: "map_literal", src: `{"k": 1 + 1, "e": {}}`, want: map[string]any{"k": int64(2), "e": map[string]any{}}},
		{name: "multi_line", src: "\"SELECT * from \" +\n  s", want: "SELECT * from héllo"},

		// Variables and access [expr].
		{name: "var", src: "i", want: int64(7)},
		{name: "go_int_normalized", src: "goint + 1", want: int64(6)},
		{name: "dot_access", src: "m.b.c", want: "deep"},
		{name: "bracket_access", src: `m["b"]["c"]`, want: "deep"},
		{name: "list_index", src: "l[1]", want: "two"},
		{name: "index_expression", src: "l[i - 6]", want: "two"},
		{name: "null_field_value", src: "m.n", want: nil},
		{name: "missing_key_dot", src: "m.zz", wantTag: TagKeyError},
		{name: "missing_key_bracket", src: `m["zz"]`, wantTag: TagKeyError},
		{name: "undefined_variable", src: "nope", wantTag: TagKeyError},
		{name: "index_out_of_range", src: "l[3]", wantTag: TagIndexError},
		{name: "negative_index", src: "l[-1]", wantTag: TagIndexError},
		{name: "double_index", src: "l[1.0]", wantTag: TagTypeError},
		{name: "field_of_string", src: "s.x", wantTag: TagTypeError},
		{name: "field_of_null", src: "nul.x", wantTag: TagTypeError},
		{name: "index_of_int", src: "i[0]", wantTag: TagTypeError},
		{name: "math_max_string", src: `math.max("9", 1)`, wantTag: TagTypeError},
		{name: "math_min_bool", src: "math.min(1, t)", wantTag: TagTypeError},
		{name: "math_max_null", src: "math.max(nul, 1)", wantTag: TagTypeError},
		{name: "map_int_key", src: "m[1]", wantTag: TagTypeError},
		{name: "keyword_field_name", src: `{"in": 1}.in`, want: int64(1)},

		// Arithmetic and typing [expr], [types].
		{name: "int_add", src: "i + 3", want: int64(10)},
		{name: "mixed_add", src: "i + d", want: 9.5},
		{name: "int_sub", src: "3 - i", want: int64(-4)},
		{name: "int_mul", src: "i * 3", want: int64(21)},
		{name: "int_div_is_double", src: "6 / 3", want: 2.0},
		{name: "int_div_fraction", src: "7 / 2", want: 3.5},
		{name: "floor_div", src: "7 // 2", want: int64(3)},
		{name: "floor_div_negative", src: "n // 2", want: int64(-4)},
		{name: "floor_div_double", src: "7.5 // 2", want: 3.0},
		{name: "remainder", src: "7 % 3", want: int64(1)},
		{name: "remainder_negative", src: "n % 3", want: int64(2)},
		{name: "remainder_double", src: "7.5 % 2", want: 1.5},
		{name: "div_zero", src: "1 / 0", wantTag: TagZeroDivisionError},
		{name: "div_zero_double", src: "1 / 0.0", wantTag: TagZeroDivisionError},
		{name: "floordiv_zero", src: "1 // 0", wantTag: TagZeroDivisionError},
		{name: "mod_zero", src: "1 % 0", wantTag: TagZeroDivisionError},
		{name: "add_overflow", src: "max + 1", wantTag: TagValueError},
		{name: "sub_overflow", src: "min - 1", wantTag: TagValueError},
		{name: "mul_overflow", src: "max * 2", wantTag: TagValueError},
		{name: "neg_overflow", src: "-min", wantTag: TagValueError},
		{name: "floordiv_overflow", src: "min // -1", wantTag: TagValueError},
		{name: "unary_minus", src: "-i", want: int64(-7)},
		{name: "double_negation", src: "- -d", want: 2.5},
		{name: "precedence_mul_add", src: "1 + 2 * 3", want: int64(7)},
		{name: "parentheses", src: "(1 + 2) * 3", want: int64(9)},
		{name: "left_assoc_sub", src: "10 - 4 - 3", want: int64(3)},
		{name: "string_concat", src: `s + "!"`, want: "héllo!"},
		{name: "string_plus_int", src: `"n=" + 1`, wantTag: TagTypeError},
		{name: "int_plus_string", src: `1 + "n"`, wantTag: TagTypeError},
		{name: "bool_plus_int", src: "t + 1", wantTag: TagTypeError},
		{name: "list_plus_list", src: "l + l", wantTag: TagTypeError},
		{name: "null_arith", src: "nul * 2", wantTag: TagTypeError},
		{name: "unary_minus_string", src: "-s", wantTag: TagTypeError},

		// Comparison, logic, membership [types], [helpers].
		{name: "eq_int_double", src: "1 == 1.0", want: true},
		{name: "eq_types_differ", src: `1 == "1"`, want: false},
		{name: "eq_null", src: "nul == null", want: true},
		{name: "ne_deep", src: `l != [1, "two", 3]`, want: false},
		{name: "eq_maps", src: `{"a": 1} == {"a": 1.0}`, want: true},
		{name: "lt_mixed", src: "i < d * 3", want: true},
		{name: "ge_strings", src: `"b" >= "a"`, want: true},
		{name: "lt_incomparable", src: `1 < "2"`, wantTag: TagTypeError},
		{name: "lt_bools", src: "t < f", wantTag: TagTypeError},
		{name: "and_or", src: "t and not f or f", want: true},
		{name: "upper_case_logic", src: "t AND NOT f", want: true},
		{name: "and_short_circuit", src: "f and m.zz", want: false},
		{name: "or_short_circuit", src: "t or m.zz", want: true},
		{name: "and_non_bool", src: "1 and t", wantTag: TagTypeError},
		{name: "or_non_bool_right", src: "f or 1", wantTag: TagTypeError},
		{name: "not_non_bool", src: "not 1", wantTag: TagTypeError},
		{name: "not_binds_tighter_than_eq", src: "not t == f", want: true},
		{name: "in_list", src: `"two" in l`, want: true},
		{name: "in_list_numeric", src: "3 in l", want: true},
		{name: "in_map_key", src: `"a" in m`, want: true},
		{name: "not_in_map", src: `not ("zz" in m)`, want: true},
		{name: "in_string", src: `"h" in s`, wantTag: TagTypeError},
		{name: "in_map_int", src: "1 in m", wantTag: TagTypeError},
		{name: "comparison_below_arith", src: "1 + 1 == 2 and 2 * 2 > 3", want: true},

		// Expression helpers [helpers].
		{name: "default_null", src: `default(nul, "x")`, want: "x"},
		{name: "default_value", src: `default(i, "x")`, want: int64(7)},
		{name: "default_with_map_get", src: `default(map.get(m, "zz"), 0)`, want: int64(0)},
		{name: "default_does_not_catch", src: `default(m.zz, 0)`, wantTag: TagKeyError},
		{name: "if_true", src: `if(i > 5, "big", "small")`, want: "big"},
		{name: "if_null_is_false", src: `if(nul, "a", "b")`, want: "b"},
		{name: "if_non_bool", src: `if(1, "a", "b")`, wantTag: TagTypeError},
		{name: "len_string_chars", src: "len(s)", want: int64(5)},
		{name: "len_list", src: "len(l)", want: int64(3)},
		{name: "len_map", src: "len(m)", want: int64(3)},
		{name: "len_int", src: "len(i)", wantTag: TagTypeError},
		{name: "keys_sorted", src: "keys(m)", want: []any{"a", "b", "n"}},
		{name: "keys_non_map", src: "keys(l)", wantTag: TagTypeError},
		{name: "int_from_string", src: `int("-12")`, want: int64(-12)},
		{name: "int_truncates", src: "int(-2.7)", want: int64(-2)},
		{name: "int_bad_string", src: `int("1.5")`, wantTag: TagValueError},
		{name: "int_of_bool", src: "int(t)", wantTag: TagTypeError},
		{name: "double_from_string", src: `double("2.5")`, want: 2.5},
		{name: "double_from_int", src: "double(i)", want: 7.0},
		{name: "double_bad", src: `double("x")`, wantTag: TagValueError},
		{name: "string_int", src: "string(i)", want: "7"},
		{name: "string_double", src: "string(2.0)", want: "2.0"},
		{name: "string_bool", src: "string(t)", want: "true"},
		{name: "string_list", src: "string(l)", wantTag: TagTypeError},
		{name: "get_type", src: "[get_type(i), get_type(d), get_type(bs), get_type(nul)]", want: []any{"integer", "double", "bytes", "null"}},

		// map and list modules [map.get].
		{name: "map_get", src: `map.get(m, "a")`, want: int64(1)},
		{name: "map_get_missing", src: `map.get(m, "zz")`, want: nil},
		{name: "map_get_path", src: `map.get(m, ["b", "c"])`, want: "deep"},
		{name: "map_get_path_through_scalar", src: `map.get(m, ["a", "c"])`, want: nil},
		{name: "map_get_not_map", src: `map.get(l, "a")`, want: nil},
		{name: "map_get_bad_key", src: "map.get(m, 1)", wantTag: TagTypeError},
		{name: "map_merge", src: `map.merge({"a": 1, "b": 2}, {"b": 3})`, want: map[string]any{"a": int64(1), "b": int64(3)}},
		{name: "map_merge_nested", src: `map.merge_nested({"a": {"x": 1}}, {"a": {"y": 2}})`, want: map[string]any{"a": map[string]any{"x": int64(1), "y": int64(2)}}},
		{name: "map_delete", src: `map.delete({"a": 1, "b": 2}, "a")`, want: map[string]any{"b": int64(2)}},
		{name: "list_concat_appends", src: `list.concat([1], [2])`, want: []any{int64(1), []any{int64(2)}}},
		{name: "list_prepend", src: `list.prepend([1], 0)`, want: []any{int64(0), int64(1)}},
		{name: "math_abs", src: "math.abs(n)", want: int64(7)},
		{name: "math_floor", src: "math.floor(-2.5)", want: int64(-3)},
		{name: "math_max_mixed_is_double", src: "math.max(2, 1.5)", want: float64(2)},
		{name: "math_max_ints", src: "math.max(2, 7)", want: int64(7)},
		{name: "math_min_ints", src: "math.min(2, 7)", want: int64(2)},
		{name: "math_max_doc_example", src: "math.max(123, -456.7)", want: float64(123)},
		{name: "math_min", src: "math.min(2, 1.5)", want: 1.5},

		// text, base64, json [text], [json].
		{name: "text_roundtrip", src: "text.decode(text.encode(s))", want: "héllo"},
		{name: "text_encode_bytes", src: `text.encode("hi")`, want: []byte("hi")},
		{name: "text_decode_invalid_utf8", src: `text.decode(base64.decode("/w=="))`, want: "\uFFFD"},
		{name: "text_decode_charset", src: `text.decode(bs, "latin-2")`, wantTag: TagValueError},
		{name: "text_decode_string", src: `text.decode("x")`, wantTag: TagTypeError},
		{name: "text_split", src: `text.split("a,b,,c", ",")`, want: []any{"a", "b", "", "c"}},
		{name: "text_substring", src: `text.substring("hello", 2, 4)`, want: "ll"},
		{name: "text_substring_clamped", src: `text.substring("hello", -10, 10)`, want: "hello"},
		{name: "text_substring_negative", src: `text.substring(s, -3, 5)`, want: "llo"},
		{name: "text_case", src: `text.to_upper("ab") + text.to_lower("CD")`, want: "ABcd"},
		{name: "text_replace_all", src: `text.replace_all("a-b-c", "-", "+")`, want: "a+b+c"},
		{name: "text_replace_all_regex", src: `text.replace_all_regex("one two", "one|two", "three")`, want: "three three"},
		{name: "text_replace_bad_regex", src: `text.replace_all_regex("x", "(", "y")`, wantTag: TagValueError},
		{name: "text_match_regex", src: `text.match_regex("user:alice@example.com", "^user:[a-z]+@")`, want: true},
		{name: "base64_roundtrip", src: `text.decode(base64.decode(base64.encode(text.encode("hi"))))`, want: "hi"},
		{name: "base64_encode", src: "base64.encode(bs)", want: "aGk="},
		{name: "base64_encode_nopad", src: "base64.encode(bs, false)", want: "aGk"},
		{name: "base64_encode_string", src: `base64.encode("hi")`, wantTag: TagTypeError},
		{name: "base64_decode_bad", src: `base64.decode("***")`, wantTag: TagValueError},
		{name: "pubsub_event_payload", src: "json.decode(text.decode(base64.decode(event.data.message.data))).role", want: "roles/viewer"},
		{name: "json_encode_sorted", src: `json.encode_to_string({"b": [1, 2.0, null], "a": "x"})`, want: `{"a":"x","b":[1,2.0,null]}`},
		{name: "json_encode_bytes_type", src: `get_type(json.encode(1))`, want: "bytes"},
		{name: "json_encode_of_bytes", src: "json.encode(bs)", wantTag: TagValueError},
		{name: "json_encode_indent", src: `json.encode_to_string({"a": [1]}, true)`, want: "{\n    \"a\": [\n        1\n    ]\n}"},
		{name: "json_decode_types", src: `json.decode("{\"i\": 1, \"d\": 1.5, \"e\": 1e2}")`, want: map[string]any{"i": int64(1), "d": 1.5, "e": 100.0}},
		{name: "json_decode_bytes", src: `json.decode(text.encode("[true]"))`, want: []any{true}},
		{name: "json_decode_invalid", src: `json.decode("{")`, wantTag: TagValueError},
		{name: "json_decode_trailing", src: `json.decode("1 2")`, wantTag: TagValueError},

		// time [time].
		{name: "time_format_int", src: "time.format(1720788633)", want: "2024-07-12T12:50:33.000000Z"},
		{name: "time_format_gmt", src: `time.format(1720788633, "GMT")`, want: "2024-07-12T12:50:33.000000Z"},
		{name: "time_format_paris", src: `time.format(1720788633, "Europe/Paris")`, want: "2024-07-12T14:50:33.000000+02:00"},
		{name: "time_format_micros", src: "time.format(sys.now())", want: "2024-07-12T12:50:33.500000Z"},
		{name: "time_format_bad_tz", src: `time.format(0, "Mars/Olympus")`, wantTag: TagValueError},
		{name: "time_parse", src: `time.parse("2024-05-08T12:01:00.000000Z")`, want: 1715169660.0},
		{name: "time_parse_offset", src: `time.parse("2024-05-08T14:01:00.25+02:00")`, want: 1715169660.25},
		{name: "time_parse_roundtrip", src: "time.parse(time.format(1720788633.123456))", want: 1720788633.123456},
		{name: "time_parse_not_rfc3339", src: `time.parse("2024-05-08 12:01:00")`, wantTag: TagValueError},
		{name: "time_parse_nanos", src: `time.parse("2024-05-08T12:01:00.123456789Z")`, wantTag: TagValueError},
		{name: "time_parse_type", src: "time.parse(1)", wantTag: TagTypeError},

		// Functions served by the environment.
		{name: "env_call", src: `sys.get_env("GOOGLE_CLOUD_PROJECT_ID")`, want: "demo-project"},
		{name: "env_call_exception", src: `sys.get_env("X")`, wantTag: TagKeyError},
		{name: "env_in_expression", src: `"projects/" + sys.get_env("GOOGLE_CLOUD_PROJECT_ID") + "/topics/t"`, want: "projects/demo-project/topics/t"},
	}
	env := testEnv{vars: baseVars()}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, err := Parse(tc.src)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tc.src, err)
			}
			got, err := e.Eval(env)
			if tc.wantTag != "" {
				var we *Error
				if !errors.As(err, &we) {
					t.Fatalf("Eval(%q) = %#v, %v; want a %s exception", tc.src, got, err, tc.wantTag)
				}
				if diff := cmp.Diff([]string{tc.wantTag}, we.Tags); diff != "" {
					t.Errorf("Eval(%q) tags (-want, +got):\n%s\nmessage: %s", tc.src, diff, we.Message)
				}
				return
			}
			if err != nil {
				t.Fatalf("Eval(%q) error: %v", tc.src, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Eval(%q) (-want, +got):\n%s", tc.src, diff)
			}
		})
	}
}

// Workflows rejects malformed expressions when the workflow is deployed
// ([expr]: "All expressions must begin with a $ and be enclosed in curly
// brackets"; the documented number syntax is digits and a decimal point), so
// Parse reports them before any step runs.
func TestParseErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		src     string
		wantMsg string
	}{
		{src: "", wantMsg: "empty expression"},
		{src: "1 +", wantMsg: "unexpected end of expression"},
		{src: "(1", wantMsg: "expected ')'"},
		{src: "a.", wantMsg: "expected a name after '.'"},
		{src: "a = 1", wantMsg: "use == to compare"},
		{src: "!a", wantMsg: "use not"},
		{src: "1e3", wantMsg: "malformed number"},
		{src: "1.", wantMsg: "expected a name after '.'"},
		{src: "99999999999999999999", wantMsg: "out of range"},
		{src: `"abc`, wantMsg: "unterminated string"},
		{src: `"a\qb"`, wantMsg: "unknown escape"},
		{src: "\"a\nb\"", wantMsg: "line break in string literal"},
		{src: `"\ud800"`, wantMsg: "lone UTF-16 surrogate"},
		{src: "a And b", wantMsg: "unexpected name And"},
		{src: "l[0](1)", wantMsg: "only named functions can be called"},
		{src: "{a: 1}", wantMsg: "expected a quoted map key"},
		{src: `{"a": 1, "a": 2}`, wantMsg: "duplicate map key"},
		{src: "[1, 2,]", wantMsg: "unexpected ']'"},
		{src: "len(1, 2)", wantMsg: "len takes 1 argument, got 2"},
		{src: `map.get(m)`, wantMsg: "map.get takes 2 arguments, got 1"},
		{src: "time.format()", wantMsg: "time.format takes 1 to 2 arguments, got 0"},
		{src: "1 2", wantMsg: "unexpected number"},
		{src: "a\n  + * b", wantMsg: "line 2, column 5"},
		{src: strings.Repeat("(", 300) + "1" + strings.Repeat(")", 300), wantMsg: "nested too deeply"},
		{src: "a # b", wantMsg: "unexpected character '#'"},
	}
	for _, tc := range cases {
		t.Run(tc.src, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tc.src)
			var we *Error
			if !errors.As(err, &we) {
				t.Fatalf("Parse(%q) error = %v, want *Error", tc.src, err)
			}
			if diff := cmp.Diff([]string{TagSyntaxError}, we.Tags); diff != "" {
				t.Errorf("Parse(%q) tags (-want, +got):\n%s", tc.src, diff)
			}
			if !strings.Contains(we.Message, tc.wantMsg) {
				t.Errorf("Parse(%q) message = %q, want it to contain %q", tc.src, we.Message, tc.wantMsg)
			}
		})
	}
}

// The documented order of operations ([types], "Order of operations") must
// survive printing: String keeps exactly the parentheses the tree needs.
func TestString(t *testing.T) {
	t.Parallel()
	cases := []struct{ src, want string }{
		{src: "1+2*3", want: "1 + 2 * 3"},
		{src: "(1+2)*3", want: "(1 + 2) * 3"},
		{src: "10-(4-3)", want: "10 - (4 - 3)"},
		{src: "(10-4)-3", want: "10 - 4 - 3"},
		{src: "not (a==b)", want: "not (a == b)"},
		{src: "not a==b", want: "not a == b"},
		{src: "-(a.b)", want: "-a.b"},
		{src: "(-a).b", want: "(-a).b"},
		{src: "- -1", want: "--1"},
		{src: `m["k"].x[0]`, want: `m["k"].x[0]`},
		{src: `map.get(m,["a",'b'])`, want: `map.get(m, ["a", "b"])`},
		{src: `{'a':1,"b":[true,null]}`, want: `{"a": 1, "b": [true, null]}`},
		{src: "a AND b OR NOT c", want: "a and b or not c"},
		{src: "1.50 // 2", want: "1.5 // 2"},
		{src: `"tab\there\u0001"`, want: `"tab\there\u0001"`},
	}
	for _, tc := range cases {
		t.Run(tc.src, func(t *testing.T) {
			t.Parallel()
			e, err := Parse(tc.src)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.src, err)
			}
			if got := e.String(); got != tc.want {
				t.Errorf("Parse(%q).String() = %q, want %q", tc.src, got, tc.want)
			}
		})
	}
}

// The runner validates names at load time ([expr]: standard library
// functions are called by dotted name; variables by name).
func TestVarsAndFuncs(t *testing.T) {
	t.Parallel()
	e, err := Parse(`map.get(args, "x") + len(sys.now()) + b.c[d] + default(a, a) + http.default_retry`)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "args", "b", "d", "http"}, e.Vars()); diff != "" {
		t.Errorf("Vars (-want, +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"default", "len", "map.get", "sys.now"}, e.Funcs()); diff != "" {
		t.Errorf("Funcs (-want, +got):\n%s", diff)
	}
	if !IsBuiltin("map.get") || IsBuiltin("sys.now") || IsBuiltin("http.get") {
		t.Errorf("IsBuiltin: map.get must be built in, sys.now and http.get must not")
	}
	if got := Builtins(); len(got) < 30 || !IsBuiltin(got[0]) {
		t.Errorf("Builtins() = %v, want every built-in name", got)
	}
}

// Env errors: a Workflows exception passes through as it is; a runner fault
// or an unknown function stays a Go error the runner can recognise.
func TestEnvErrors(t *testing.T) {
	t.Parallel()
	env := testEnv{vars: baseVars()}
	for src, want := range map[string]error{
		"fail.plain()":    nil,
		"no.such.func(1)": ErrUnknownFunction,
	} {
		e, err := Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Eval(env)
		var we *Error
		if err == nil || errors.As(err, &we) {
			t.Errorf("Eval(%q) = %v, want a non-exception error", src, err)
		}
		if want != nil && !errors.Is(err, want) {
			t.Errorf("Eval(%q) = %v, want it to wrap %v", src, err, want)
		}
	}
	e, err := Parse("sys.now()")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Eval(nil); !errors.Is(err, ErrUnknownFunction) {
		t.Errorf("Eval(nil env) = %v, want ErrUnknownFunction", err)
	}
}

// Only a scalar that is entirely ${…} is an expression; Workflows has no
// string interpolation ([expr]: "All expressions must begin with a $ and be
// enclosed in curly brackets"; [docs/google-cloud.md §4] samples build strings with +).
func TestInterpolate(t *testing.T) {
	t.Parallel()
	env := testEnv{vars: baseVars()}
	cases := []struct {
		in   string
		want any
	}{
		{in: "${i + 1}", want: int64(8)},
		{in: "${l}", want: []any{int64(1), "two", 3.0}},
		{in: "Bearer ${s}", want: "Bearer ${s}"},
		{in: " ${i}", want: " ${i}"},
		{in: "${}x", want: "${}x"},
		{in: "plain", want: "plain"},
		{in: "$i", want: "$i"},
	}
	for _, tc := range cases {
		got, err := Interpolate(tc.in, env)
		if err != nil {
			t.Errorf("Interpolate(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Interpolate(%q) (-want, +got):\n%s", tc.in, diff)
		}
	}
	if _, err := Interpolate("${a} and ${b}", env); err == nil {
		t.Errorf(`Interpolate("${a} and ${b}") succeeded, want a syntax error`)
	}
	if _, err := Interpolate("${}", env); err == nil {
		t.Errorf(`Interpolate("${}") succeeded, want a syntax error`)
	}
}

// except: as: e exposes {message, tags}, and tags are tested with `in`
// ([docs/google-cloud.md §4] "Errors are matched by e.tags, for example
// "TimeoutError" in e.tags").
func TestErrorMap(t *testing.T) {
	t.Parallel()
	_, err := mustParse(t, "m.zz").Eval(testEnv{vars: baseVars()})
	var we *Error
	if !errors.As(err, &we) {
		t.Fatalf("want *Error, got %v", err)
	}
	env := testEnv{vars: map[string]any{"e": we.Map()}}
	got, err := mustParse(t, `"KeyError" in e.tags and len(e.message) > 0`).Eval(env)
	if err != nil || got != true {
		t.Errorf(`"KeyError" in e.tags = %v, %v; want true`, got, err)
	}
	if got := we.Error(); !strings.HasPrefix(got, "KeyError: ") {
		t.Errorf("Error() = %q, want a KeyError: prefix", got)
	}
}

func mustParse(t *testing.T, src string) *Expr {
	t.Helper()
	e, err := Parse(src)
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return e
}

// Assignment has value semantics, so the runner copies values it stores.
func TestCopy(t *testing.T) {
	t.Parallel()
	orig := map[string]any{"l": []any{map[string]any{"x": int64(1)}}, "b": []byte("ab")}
	c := Copy(orig).(map[string]any)
	c["l"].([]any)[0].(map[string]any)["x"] = int64(2)
	c["b"].([]byte)[0] = 'z'
	want := map[string]any{"l": []any{map[string]any{"x": int64(1)}}, "b": []byte("ab")}
	if diff := cmp.Diff(want, orig); diff != "" {
		t.Errorf("Copy shares structure with the original (-want, +got):\n%s", diff)
	}
}

// json.encode output is stable (sorted keys) and bytes cannot be encoded
// ([json]: ValueError "If the input contains types that cannot be
// JSON-encoded. Examples of such types include callable and bytes").
func TestJSON(t *testing.T) {
	t.Parallel()
	v := map[string]any{"z": int64(1), "a": []any{2.5, "é", nil, true}, "m": map[string]any{}}
	b, err := EncodeJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"a":[2.5,"é",null,true],"m":{},"z":1}`; got != want {
		t.Errorf("EncodeJSON = %s, want %s", got, want)
	}
	back, err := DecodeJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(v, back); diff != "" {
		t.Errorf("DecodeJSON(EncodeJSON(v)) (-want, +got):\n%s", diff)
	}
	for _, bad := range []any{[]byte("x"), math.Inf(1), struct{}{}} {
		var we *Error
		if _, err := EncodeJSON(map[string]any{"k": bad}); !errors.As(err, &we) || we.Tags[0] != TagValueError {
			t.Errorf("EncodeJSON(%T) = %v, want ValueError", bad, err)
		}
	}
	big, err := DecodeJSON([]byte("[9223372036854775807, 9223372036854775808]"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]any{int64(math.MaxInt64), 9223372036854775808.0}, big); diff != "" {
		t.Errorf("DecodeJSON integer range (-want, +got):\n%s", diff)
	}
}

// Eval is safe for concurrent use: parallel branches share parsed steps.
func TestConcurrentEval(t *testing.T) {
	t.Parallel()
	e := mustParse(t, `map.merge(m, {"k": i * 2})["k"] + len(keys(m))`)
	env := testEnv{vars: baseVars()}
	done := make(chan error)
	for range 8 {
		go func() {
			for range 100 {
				v, err := e.Eval(env)
				if err == nil && v != int64(17) {
					err = fmt.Errorf("got %v", v)
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func BenchmarkEval(b *testing.B) {
	e, err := Parse(`default(map.get(event, ["data", "message", "data"]), "") != "" and i * 2 + 1 > 3`)
	if err != nil {
		b.Fatal(err)
	}
	env := testEnv{vars: baseVars()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Eval(env); err != nil {
			b.Fatal(err)
		}
	}
}
