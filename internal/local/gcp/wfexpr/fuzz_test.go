package wfexpr

import (
	"errors"
	"testing"
)

// FuzzParse checks that Parse never panics, that String's output parses back
// to an expression with the same String, and that evaluating whatever parses
// never panics. Run it with
//
//	go test ./internal/local/gcp/wfexpr -run '^$' -fuzz '^FuzzParse$' -fuzztime 60s
//
// Plain `go test` runs only the seed corpus below.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"1 + 2 * 3",
		`map.get(m, ["a", "b"])`,
		`json.decode(text.decode(base64.decode(event.data.message.data)))`,
		`not a == b or c and -d.e[0] // 2 % 3`,
		`{"k": [1, 2.5, 'x', null, true]}`,
		`"\u00e9\ud83d\ude00\n\t\\"`,
		`default(args.ttl, 3600) >= 60 AND NOT ("x" in l)`,
		`time.format(sys.now() + 3600)`,
		"- -1.5",
		"(-a).b",
		"a\n+\nb",
		"len(l) - 1 < 2",
		`if(x, [], {})`,
		"1..2",
		"a[",
		`"unterminated`,
	} {
		f.Add(seed)
	}
	env := testEnv{vars: baseVars()}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			if _, ok := errors.AsType[*Error](err); !ok {
				t.Fatalf("Parse(%q) error %T is not *Error", src, err)
			}
			return
		}
		s1 := e.String()
		e2, err := Parse(s1)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its String %q does not parse: %v", src, s1, err)
		}
		if s2 := e2.String(); s2 != s1 {
			t.Fatalf("round trip unstable for %q: %q then %q", src, s1, s2)
		}
		_, _ = e.Eval(env)
	})
}
