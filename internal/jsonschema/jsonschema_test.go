package jsonschema

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCompileRefuses: everything outside the subset is refused, naming
// the keyword's JSON pointer, so a schema change cannot silently stop
// being checked.
func TestCompileRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		schema string
		want   string
	}{
		{"unknown keyword", `{"oneOf": []}`, `/oneOf: keyword 'oneOf' is not supported`},
		{"nested unknown keyword", `{"properties": {"a": {"uniqueItems": true}}}`,
			`/properties/a/uniqueItems: keyword 'uniqueItems' is not supported`},
		{"else", `{"if": true, "then": true, "else": false}`, `/else: keyword 'else' is not supported`},
		{"then without if", `{"then": false}`, `/then: then without if has no effect`},
		{"in $defs", `{"$defs": {"x": {"not": {}}}}`, `/$defs/x/not: keyword 'not' is not supported`},
		{"other draft", `{"$schema": "http://json-schema.org/draft-07/schema#"}`, `/$schema: is 'http://json-schema.org/draft-07/schema#'`},
		{"nested $id", `{"items": {"$id": "x"}}`, `/items/$id: keyword $id is only supported at the root`},
		{"unknown format", `{"format": "hostname"}`, `/format: format 'hostname' is not supported (only date-time, email, uri)`},
		{"lookahead", `{"pattern": "(?=a)"}`, `/pattern: pattern '(?=a)': only (?: groups`},
		{"pattern Go rejects", `{"pattern": "a{2,1}"}`, `/pattern: pattern 'a{2,1}' does not compile with Go's regexp`},
		{"dot", `{"pattern": "^a.b$"}`, `/pattern: pattern '^a.b$': "." outside a class`},
		{"empty class", `{"pattern": "[]a]"}`, `/pattern: pattern '[]a]': "[]" and "[^]"`},
		{"\\s", `{"pattern": "\\s"}`, `/pattern: pattern '\\s': \s means something else`},
		{"remote $ref", `{"$ref": "other.json#/$defs/a"}`, `/$ref: $ref 'other.json#/$defs/a' is not supported`},
		{"dangling $ref", `{"$ref": "#/$defs/a"}`, `/$ref: $ref to 'a': no such $defs entry`},
		{"recursive $ref", `{"$defs": {"a": {"items": {"$ref": "#/$defs/a"}}}, "$ref": "#/$defs/a"}`,
			`/$defs/a/items/$ref: $ref to 'a' is recursive`},
		{"negative minLength", `{"minLength": -1}`, `/minLength: minLength must be a non-negative integer`},
		{"fractional maxItems", `{"maxItems": 1.5}`, `/maxItems: maxItems must be a non-negative integer`},
		{"bad type", `{"type": "int"}`, `/type: unknown type 'int'`},
		{"required not strings", `{"required": [1]}`, `/required: required must be an array of distinct strings`},
		{"schema not a schema", `{"items": 3}`, `/items: a schema must be an object or a boolean, not number`},
		{"empty enum", `{"enum": []}`, `/enum: enum must be a non-empty array`},
		{"not JSON", `{`, `failed to decode JSON`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Compile([]byte(tc.schema))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Compile(%s) = %v, want an error containing %q", tc.schema, err, tc.want)
			}
		})
	}
}

const testSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "https://example.com/t.json",
  "title": "t", "description": "d", "examples": [{}],
  "type": "object",
  "additionalProperties": false,
  "required": ["id"],
  "properties": {
    "id": {"type": "string", "pattern": "^g-[a-z]{3}$"},
    "name": {"type": "string", "minLength": 2, "maxLength": 3},
    "n": {"type": "integer", "minimum": 1, "maximum": 10},
    "x": {"type": ["number", "null"]},
    "state": {"enum": ["A", "B"]},
    "on": {"type": "boolean"},
    "at": {"type": "string", "format": "date-time"},
    "tags": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"$ref": "#/$defs/tag"}},
    "a/b~": {"const": {"k": [1, "v"]}}
  },
  "allOf": [{"if": {"required": ["on"], "properties": {"on": {"const": true}}}, "then": {"required": ["at"]}}],
  "$defs": {"tag": {"type": "object", "required": ["k"], "additionalProperties": false, "properties": {"k": {"type": "string"}}}}
}`

// TestValidate: each keyword's problems, at the instance's JSON pointer
// and the keyword's.
func TestValidate(t *testing.T) {
	t.Parallel()
	s, err := Compile([]byte(testSchema))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		instance string
		want     []Problem
	}{
		{"valid", `{"id": "g-abc", "name": "éé", "n": 1.0, "x": null, "tags": [{"k": "v"}], "on": false, "a/b~": {"k": [1.0, "v"]}}`, nil},
		{"not an object", `[]`, []Problem{{"", "/type", "got array, want object"}}},
		{"missing", `{}`, []Problem{{"", "/required", "missing property 'id'"}}},
		{"extra", `{"id": "g-abc", "z": 1, "y": 2}`, []Problem{{"", "/additionalProperties", "additional properties 'y', 'z' not allowed"}}},
		{"pattern", `{"id": "g-abcd"}`, []Problem{{"/id", "/properties/id/pattern", "'g-abcd' does not match pattern '^g-[a-z]{3}$'"}}},
		{"code points", `{"id": "g-abc", "name": "😀😀😀😀"}`, []Problem{{"/name", "/properties/name/maxLength", "maxLength: got 4, want 3"}}},
		{"short", `{"id": "g-abc", "name": "é"}`, []Problem{{"/name", "/properties/name/minLength", "minLength: got 1, want 2"}}},
		{"integer", `{"id": "g-abc", "n": 1.5}`, []Problem{{"/n", "/properties/n/type", "got number, want integer"}}},
		{"minimum", `{"id": "g-abc", "n": 0}`, []Problem{{"/n", "/properties/n/minimum", "minimum: got 0, want 1"}}},
		{"maximum", `{"id": "g-abc", "n": 1e1000}`, []Problem{{"/n", "/properties/n/maximum", "maximum: got 1e1000, want 10"}}},
		{"types", `{"id": "g-abc", "x": "1"}`, []Problem{{"/x", "/properties/x/type", "got string, want number or null"}}},
		{"enum", `{"id": "g-abc", "state": "C"}`, []Problem{{"/state", "/properties/state/enum", "value must be one of 'A', 'B'"}}},
		{"const", `{"id": "g-abc", "a/b~": {"k": [2, "v"]}}`, []Problem{{"/a~1b~0", "/properties/a~1b~0/const", `value must be {"k":[1,"v"]}`}}},
		{"format", `{"id": "g-abc", "at": "2026-02-30T00:00:00Z"}`, []Problem{{"/at", "/properties/at/format", "'2026-02-30T00:00:00Z' is not valid date-time: 2026-02 has no day 30"}}},
		{"items", `{"id": "g-abc", "tags": [{"k": "v"}, {"k": 1, "j": 2}, {"k": "w"}]}`, []Problem{
			{"/tags", "/properties/tags/maxItems", "maxItems: got 3, want 2"},
			{"/tags/1/k", "/$defs/tag/properties/k/type", "got number, want string"},
			{"/tags/1", "/$defs/tag/additionalProperties", "additional properties 'j' not allowed"},
		}},
		{"no items", `{"id": "g-abc", "tags": []}`, []Problem{{"/tags", "/properties/tags/minItems", "minItems: got 0, want 1"}}},
		{"if then", `{"id": "g-abc", "on": true}`, []Problem{{"", "/allOf/0/then/required", "missing property 'at'"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := Decode([]byte(tc.instance))
			if err != nil {
				t.Fatal(err)
			}
			err = s.Validate(v)
			var got []Problem
			var ve *ValidationError
			if errors.As(err, &ve) {
				got = ve.Problems
			} else if err != nil {
				t.Fatalf("Validate = %v, want a *ValidationError", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeRefusesTrailingData(t *testing.T) {
	t.Parallel()
	for _, in := range []string{``, `{} {}`, `{}x`, `[`, `01`} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("Decode(%q) accepted it", in)
		}
	}
	if _, err := Decode([]byte(" {} \n")); err != nil {
		t.Errorf("Decode with white space: %v", err)
	}
}

func TestDecimal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b    string
		cmp     int
		integer bool // a's
	}{
		{"1", "1.0", 0, true},
		{"10", "1e1", 0, true},
		{"0.5", "0.45", 1, false},
		{"-1", "1", -1, true},
		{"-0", "0", 0, true},
		{"-2", "-10", 1, true},
		{"1e999999999999999", "1", 1, true},
		{"1e-999999999999999", "0", 1, false},
		{"100e-2", "1", 0, true},
		{"0.000", "0", 0, true},
		{"12.5E+1", "125", 0, true},
	}
	for _, tc := range tests {
		a, err := parseDecimal(tc.a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := parseDecimal(tc.b)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.cmp(b); got != tc.cmp {
			t.Errorf("cmp(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.cmp)
		}
		if got := b.cmp(a); got != -tc.cmp {
			t.Errorf("cmp(%s, %s) = %d, want %d", tc.b, tc.a, got, -tc.cmp)
		}
		if got := a.isInteger(); got != tc.integer {
			t.Errorf("isInteger(%s) = %v, want %v", tc.a, got, tc.integer)
		}
	}
}

func TestFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		format, s string
		ok        bool
	}{
		{"date-time", "2026-01-02T03:04:05Z", true},
		{"date-time", "2026-01-02t03:04:05.5+01:00", true},
		{"date-time", "2024-02-29T00:00:00Z", true},
		{"date-time", "2100-02-29T00:00:00Z", false},
		{"date-time", "2026-12-31T23:59:60Z", true},
		{"date-time", "2026-12-31T22:59:60-01:00", true},
		{"date-time", "2026-12-31T23:59:60+01:00", false},
		{"date-time", "2026-01-02T03:04:05", false},
		{"date-time", "2026-01-02T+0:04:05Z", false},
		{"date-time", "2026-01-02T03:04:05+24:00", false},
		{"email", "alice@example.com", true},
		{"email", "a@b.c.", true},
		{"email", `"a b"@c.d`, true},
		{"email", "a@[IPv6:::1]", true},
		{"email", "a@[127.0.0.1]", true},
		{"email", "@b.c", false},
		{"email", "a..b@c.d", false},
		{"email", "a@-b.c", false},
		{"email", "alice", false},
		{"uri", "https://example.com/x", true},
		{"uri", "mailto:a@b", true},
		{"uri", "/relative", false},
		{"uri", "https://[::1", false},
	}
	for _, tc := range tests {
		if err := formats[tc.format](tc.s); (err == nil) != tc.ok {
			t.Errorf("%s %q: err = %v, want ok = %v", tc.format, tc.s, err, tc.ok)
		}
	}
}
