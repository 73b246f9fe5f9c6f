package events

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// corpus is the payloads of eventType both validators must judge alike:
// every example of its schema and, for each, the example with one value
// changed in every way the schema has an opinion on (variants).
func corpus(t *testing.T, eventType string) [][]byte {
	t.Helper()
	doc := schemaDoc(t, eventType)
	defs, _ := doc["$defs"].(map[string]any)
	seen := map[string]bool{}
	var out [][]byte
	add := func(v any) {
		b := mustJSON(t, v)
		if !seen[string(b)] {
			seen[string(b)] = true
			out = append(out, b)
		}
	}
	for _, ex := range doc["examples"].([]any) {
		add(ex)
		for _, v := range variants(doc, defs, ex) {
			add(v)
		}
	}
	return out
}

// otherTypes are a value of every JSON type, and integers and numbers
// spelt in ways that are easy to mistype.
var otherTypes = []any{nil, true, false, json.Number("0"), json.Number("1.5"), json.Number("1.0"),
	json.Number("-1"), "", "x", []any{}, []any{"x"}, map[string]any{}}

// formatSamples are, per format, strings on both sides of the line.
var formatSamples = map[string][]string{
	"date-time": {
		"2026-01-02T03:04:05Z", "2026-01-02T03:04:05.123Z", "2026-01-02t03:04:05z",
		"2026-01-02T03:04:05+01:00", "2026-01-02T03:04:05-23:59", "2024-02-29T00:00:00Z",
		"2026-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
		"2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-01-32T00:00:00Z", "2026-01-00T00:00:00Z",
		"2026-01-02T24:00:00Z", "2026-01-02T23:60:00Z", "2026-12-31T23:59:60Z", "2026-12-31T22:59:60-01:00",
		"2026-12-31T23:59:60+01:00", "2026-12-31T12:59:60Z", "2026-01-02T03:04:05", "2026-01-02T03:04:05.Z",
		"2026-01-02T03:04:05+0100", "2026-01-02T03:04:05+01", "2026-01-02T03:04:05+24:00",
		"2026-01-02T03:04:05+01:60", "2026-01-02 03:04:05Z", "02026-01-02T03:04:05Z", "2026-1-02T03:04:05Z",
		"2026-01-02T3:04:05Z", "2026-01-02T03:04:05.123456789012Z", "\u0662026-01-02T03:04:05Z",
		"2026-01-02T03:04:05ZZ", "2026-01-02T03:04:05 Z", "2026-01-02", "03:04:05Z", "",
	},
	"email": {
		"a@b.com", "alice@example.com", "a.b@c.d", "a+tag@b.c", "a!#$%&'*+-/=?^_`{|}~@b.c",
		".a@b.c", "a.@b.c", "a..b@c.d", "a@b", "a@-b.c", "a@b-.c", "a@b_c.d", "a@b..c", "a@b.c.",
		"a@.b.c", "@b.c", "a@", "a@b@c.d", "a b@c.d", `"a b"@c.d`, `"a\"b"@c.d`, `"a\\b"@c.d`, `""@c.d`,
		`"a"b@c.d`, "a@[127.0.0.1]", "a@[IPv6:::1]", "a@[IPv6:fe80::1%eth0]", "a@[300.0.0.1]",
		"a@[::1]", "a@[IPv6:1.2.3.4]", "a@[127.0.0.1", "\u00e1@b.c", "a@b\u00fc.c", "a@123.456",
		strings.Repeat("a", 64) + "@b.c", strings.Repeat("a", 65) + "@b.c",
		"a@" + strings.Repeat("b", 63) + ".c", "a@" + strings.Repeat("b", 64) + ".c",
	},
	"uri": {
		"https://x", "https://example.com/a?b=c#d", "http://x/a b", "/rel", "rel", "x:y", "mailto:a@b",
		"https://[::1]:80/", "https://[::1", "http://x:port/", "http://x%zz/", "https://x/%zz",
		"https://exa mple.com", "HTTP://X", "https://x/#a#b", "1http://x", "https://x:80:80/",
		"https://user:pw@x/", "https://x/\u00e9", "https://x\t/", "https://", "https:", "",
	},
}

// variants are v changed, one value at a time, in the ways sch (a schema
// of the document with $defs defs) has an opinion on.
func variants(sch map[string]any, defs map[string]any, v any) []any {
	if ref, ok := sch["$ref"].(string); ok {
		sch = defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
	}
	out := slices.Clone(otherTypes)
	if enum, ok := sch["enum"].([]any); ok {
		out = append(out, enum...)
		out = append(out, "NOT_AN_ENUM_VALUE")
	}
	if c, ok := sch["const"]; ok {
		out = append(out, c)
	}
	switch x := v.(type) {
	case string:
		out = append(out, stringVariants(sch, x)...)
	case float64:
		out = append(out, numberVariants(sch)...)
	case bool:
		out = append(out, !x)
	case []any:
		out = append(out, []any{})
		if len(x) > 0 {
			for _, n := range []float64{num(sch, "minItems") - 1, num(sch, "minItems"), num(sch, "minItems") + 1,
				num(sch, "maxItems"), num(sch, "maxItems") + 1, 2} {
				if n >= 0 && n < 1000 {
					out = append(out, slices.Repeat(x[:1], int(n)))
				}
			}
			items, _ := sch["items"].(map[string]any)
			for _, item := range variants(items, defs, x[0]) {
				out = append(out, append([]any{item}, x[1:]...))
			}
		}
	case map[string]any:
		out = append(out, objectVariants(sch, defs, x)...)
	}
	return out
}

func objectVariants(sch map[string]any, defs map[string]any, x map[string]any) []any {
	var out []any
	with := func(k string, val any, del bool) {
		y := maps.Clone(x)
		if del {
			delete(y, k)
		} else {
			y[k] = val
		}
		out = append(out, y)
	}
	for _, r := range sch["required"].([]any) {
		with(r.(string), nil, true)
	}
	props, _ := sch["properties"].(map[string]any)
	for _, k := range slices.Sorted(maps.Keys(props)) {
		p := props[k].(map[string]any)
		val, present := x[k]
		if !present {
			for _, s := range samples(p) {
				with(k, s, false)
			}
			continue
		}
		with(k, nil, true)
		for _, vv := range variants(p, defs, val) {
			with(k, vv, false)
		}
	}
	with("zzExtra", "x", false)
	with("", "x", false)
	with("a/b~c", "x", false)
	return out
}

// samples are plausible values of a property an example lacks.
func samples(p map[string]any) []any {
	if f, ok := p["format"].(string); ok {
		return []any{formatSamples[f][0], formatSamples[f][1]}
	}
	if enum, ok := p["enum"].([]any); ok {
		return enum
	}
	switch p["type"] {
	case "boolean":
		return []any{true, false}
	case "integer":
		return []any{json.Number("0"), json.Number("1"), json.Number("2")}
	case "array":
		return []any{[]any{"user:bob@example.com"}}
	}
	return []any{"x", "y1"}
}

func stringVariants(sch map[string]any, s string) []any {
	var out []any
	for _, kw := range []string{"minLength", "maxLength"} {
		l, ok := sch[kw].(float64)
		if !ok {
			continue
		}
		for _, n := range []int{int(l) - 1, int(l), int(l) + 1} {
			if n < 0 {
				continue
			}
			for _, r := range []string{"a", "\u00e9", "\U0001F600"} {
				out = append(out, strings.Repeat(r, n))
			}
			if sch["format"] == "email" && n > 6 {
				out = append(out, emailOfLength(n))
			}
		}
	}
	if _, ok := sch["pattern"]; ok && s != "" {
		out = append(out, s+"!", "!"+s, s[:len(s)-1], strings.ToUpper(s), s+"\n", "\n"+s, s+s)
	}
	if f, ok := sch["format"].(string); ok {
		for _, sample := range formatSamples[f] {
			out = append(out, sample)
		}
	}
	return out
}

// emailOfLength is a valid email address of n octets (n > 6).
func emailOfLength(n int) string {
	domain := strings.Repeat("b", (n-6)%62+1)
	for len(domain)+6 < n {
		domain = strings.Repeat("c", 61) + "." + domain
	}
	return "a@" + domain + ".com"
}

func numberVariants(sch map[string]any) []any {
	out := []any{json.Number("1e400"), json.Number("-1e400"), json.Number("1e-400"), json.Number("-0")}
	for _, kw := range []string{"minimum", "maximum"} {
		m, ok := sch[kw].(float64)
		if !ok {
			continue
		}
		for _, d := range []float64{-1, -0.5, 0, 0.5, 1} {
			out = append(out, json.Number(fmt.Sprint(m+d)))
		}
		out = append(out, json.Number(fmt.Sprintf("%g.0", m)), json.Number(fmt.Sprintf("%ge0", m)),
			json.Number(fmt.Sprintf("%g0e-1", m)))
	}
	return out
}

// num is sch[kw] as a number, or -2 if sch has no such keyword.
func num(sch map[string]any, kw string) float64 {
	n, ok := sch[kw].(float64)
	if !ok {
		return -2
	}
	return n
}
