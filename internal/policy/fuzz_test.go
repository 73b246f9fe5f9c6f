package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse feeds arbitrary documents to the parser: it must never panic,
// every issue must carry a code, a position and a message, and a document
// without issues must give a usable policy. Run it with:
//
//	go test ./internal/policy -run '^$' -fuzz '^FuzzParse$' -fuzztime 60s
func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte(constrained))
	f.Add([]byte("schemaVersion: 1\nenvironment: {name: a, systems: [{name: b, groups: [{name: c}]}]}"))
	f.Add([]byte("a: &x [*x]"))
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pol, issues := Parse(data)
		if (pol == nil) == (len(issues) == 0) {
			t.Fatalf("policy %v with %d issues", pol != nil, len(issues))
		}
		for _, i := range issues {
			if i.Code == "" || i.Line < 1 || i.Column < 1 || i.Message == "" || i.Scope == "" {
				t.Fatalf("malformed issue %+v", i)
			}
		}
		if pol == nil {
			return
		}
		for _, g := range pol.Groups() {
			if got, ok := pol.Group(strings.ToUpper(g.ID())); !ok || got != g {
				t.Fatalf("group %q not found by ID", g.ID())
			}
			pol.Evaluate(NewSubject("fuzz@example.com", []string{"g@example.com"}, true))
			_, _ = pol.Join(Request{Subject: NewSubject("fuzz@example.com", nil, true), Entitlement: g.ID(), Duration: 3600e9}) // any answer will do: the fuzzer looks for panics
		}
		// Evaluate's index finds exactly what a walk of the whole policy
		// finds the subject may act on.
		for _, s := range []Subject{
			NewSubject("fuzz@example.com", []string{"g@example.com"}, true), ann, ben, mallory, managers,
		} {
			var want []string
			for a := range pol.Visible(s) {
				if a.Join || a.ApproveOthers {
					want = append(want, a.Group.ID())
				}
			}
			var got []string
			for _, a := range pol.Evaluate(s) {
				got = append(got, a.Group.ID())
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("Evaluate(%s) differs from the walk (-walk +Evaluate):\n%s", s.Email, diff)
			}
		}
	})
}
