package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// benchPolicy writes a document with the given number of groups, 100 per
// system, and five ACL entries per group (10,000 groups → 50,000 group
// entries, plus one per system and the environment's own). The subject of
// the benchmarks belongs to team-0, so at every size the same 100 groups
// concern them: the measure is how evaluation cost grows with the size of
// the policy around them.
func benchPolicy(tb testing.TB, groups int) *Policy {
	tb.Helper()
	return benchPolicyACL(tb, groups, "")
}

// benchPolicyOpen is benchPolicy with VIEW open to everyone: JIT Groups'
// default entry, every IAP user may view every group.
func benchPolicyOpen(tb testing.TB, groups int) *Policy {
	tb.Helper()
	return benchPolicyACL(tb, groups, "    - {principal: \"class:iapUsers\", allow: VIEW}\n")
}

// benchPolicyACL is benchPolicy with more entries in the environment's ACL.
func benchPolicyACL(tb testing.TB, groups int, envACL string) *Policy {
	tb.Helper()
	var b strings.Builder
	b.WriteString("schemaVersion: 1\nenvironment:\n  name: big\n  access:\n    - {principal: \"group:jit-admins@example.com\", allow: \"RECONCILE, EXPORT\"}\n" + envACL)
	b.WriteString("  constraints:\n    join:\n      - {type: expiry, min: PT1H, max: PT8H}\n  systems:\n")
	for s := 0; s*100 < groups; s++ {
		fmt.Fprintf(&b, "    - name: sys-%d\n      access:\n        - {principal: \"group:team-%d@example.com\", allow: VIEW}\n      groups:\n", s, s)
		for g := 0; g < 100 && s*100+g < groups; g++ {
			fmt.Fprintf(&b, "        - name: grp-%d\n          access:\n", g)
			fmt.Fprintf(&b, "            - {principal: \"group:team-%d@example.com\", allow: JOIN}\n", s)
			fmt.Fprintf(&b, "            - {principal: \"group:leads-%d@example.com\", allow: APPROVE_OTHERS}\n", s)
			fmt.Fprintf(&b, "            - {principal: \"user:owner-%d-%d@example.com\", allow: \"JOIN, APPROVE_SELF\"}\n", s, g)
			fmt.Fprintf(&b, "            - {principal: \"user:leaver-%d@example.com\", deny: JOIN}\n", g)
			fmt.Fprintf(&b, "            - {principal: \"domain:partner-%d.example\", allow: VIEW}\n", g)
			fmt.Fprintf(&b, "          privileges:\n            iam:\n              - {resource: projects/proj-%d-%d, role: roles/viewer}\n", s, g)
		}
	}
	pol, issues := Parse([]byte(b.String()))
	if issues != nil {
		tb.Fatal(issues)
	}
	return pol
}

var benchSubject = NewSubject("dev@example.com", []string{"team-0@example.com", "guild@example.com"}, true)

// BenchmarkEvaluate is the issue's target: one user against policies of
// 100 to 10,000 groups; the 10,000-group case may be at most 3× slower than
// the 100-group one. Run: make bench (or go test -bench=Evaluate ./internal/policy).
func BenchmarkEvaluate(b *testing.B) {
	for _, n := range []int{100, 1_000, 10_000} {
		pol := benchPolicy(b, n)
		b.Run(fmt.Sprintf("groups=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if got := pol.Evaluate(benchSubject); len(got) != 100 {
					b.Fatalf("got %d entitlements", len(got))
				}
			}
		})
	}
}

// BenchmarkTableEvaluate is issue 14's table: Evaluate at 100 and 10,000
// groups, with VIEW restricted to the subject's teams and with VIEW open
// to everyone, each measured here, alternately, so that load from
// elsewhere on the machine falls on all four alike. It reports the ratios
// (the goal: at most 3 for both) and each time per evaluation. Run it
// with -benchtime=1x: one iteration measures each case for about a
// quarter of a second, three times, and keeps the fastest round.
func BenchmarkTableEvaluate(b *testing.B) {
	type evalCase struct {
		name string
		pol  *Policy
		ns   float64
	}
	cases := []*evalCase{
		{name: "restricted-100", pol: benchPolicy(b, 100)},
		{name: "restricted-10000", pol: benchPolicy(b, 10_000)},
		{name: "open-100", pol: benchPolicyOpen(b, 100)},
		{name: "open-10000", pol: benchPolicyOpen(b, 10_000)},
	}
	for range b.N {
		for _, c := range cases {
			c.ns = 0
		}
		for range 3 {
			for _, c := range cases {
				if ns := nsPerEvaluate(b, c.pol); c.ns == 0 || ns < c.ns {
					c.ns = ns
				}
			}
		}
	}
	b.ReportMetric(cases[1].ns/cases[0].ns, "ratio-restricted")
	b.ReportMetric(cases[3].ns/cases[2].ns, "ratio-open")
	for _, c := range cases {
		b.ReportMetric(c.ns, "ns/op-"+c.name)
	}
	b.ReportMetric(0, "ns/op") // the loop's own time is not the figure
}

// nsPerEvaluate times Evaluate of benchSubject on pol for about 250 ms.
func nsPerEvaluate(b *testing.B, pol *Policy) float64 {
	b.Helper()
	n, start := 0, time.Now()
	for ; n < 10 || time.Since(start) < 250*time.Millisecond; n++ {
		if got := joinable(pol.Evaluate(benchSubject)); got != 100 {
			b.Fatalf("got %d entitlements the subject may join", got)
		}
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

// Evaluate's index finds what a walk of the whole policy finds the subject
// may act on, for subjects named at each level, in the benchmarks' large
// policies; and with VIEW open, Visible still lists every group.
func TestEvaluateMatchesWalk(t *testing.T) {
	t.Parallel()
	subjects := []Subject{
		benchSubject,
		NewSubject("owner-3-7@example.com", nil, true),
		NewSubject("lead@example.com", []string{"leads-2@example.com"}, true),
		NewSubject("leaver-7@example.com", []string{"team-0@example.com"}, true),
		NewSubject("someone@partner-4.example", nil, false),
		NewSubject("root@example.com", []string{"jit-admins@example.com"}, true),
	}
	for _, tc := range []struct {
		name    string
		pol     *Policy
		visible int // Visible's count for benchSubject
	}{
		{"restricted", benchPolicy(t, 1_000), 100},
		{"VIEW open", benchPolicyOpen(t, 1_000), 1_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, s := range subjects {
				var walk, got []string
				for a := range tc.pol.Visible(s) {
					if a.Join || a.ApproveOthers {
						walk = append(walk, a.Group.ID())
					}
				}
				for _, a := range tc.pol.Evaluate(s) {
					got = append(got, a.Group.ID())
				}
				if diff := cmp.Diff(walk, got); diff != "" {
					t.Errorf("Evaluate(%s) (-walk +Evaluate):\n%s", s.Email, diff)
				}
			}
			n := 0
			for range tc.pol.Visible(benchSubject) {
				n++
			}
			if n != tc.visible {
				t.Errorf("Visible(%s) lists %d groups, want %d", benchSubject.Email, n, tc.visible)
			}
		})
	}
}

// joinable counts the entitlements the subject may join: what the
// listings show, whatever else Evaluate returns.
func joinable(as []Access) int {
	n := 0
	for _, a := range as {
		if a.Join {
			n++
		}
	}
	return n
}

// BenchmarkJoin is the decision the intake function takes per request.
func BenchmarkJoin(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		pol := benchPolicy(b, n)
		b.Run(fmt.Sprintf("groups=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := pol.Join(Request{Subject: benchSubject, Entitlement: "big.sys-0.grp-7", Duration: time.Hour}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParse10k is how long a reload of the largest policy takes.
func BenchmarkParse10k(b *testing.B) {
	pol := benchPolicy(b, 10_000)
	b.ReportAllocs()
	b.SetBytes(int64(len(pol.Source)))
	for b.Loop() {
		if _, issues := Parse(pol.Source); issues != nil {
			b.Fatal(issues)
		}
	}
}

// The benchmark's policy really has the advertised size.
func TestBenchPolicySize(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds a 10,000-group policy")
	}
	pol := benchPolicy(t, 10_000)
	entries := len(pol.Environment.ACL)
	for _, s := range pol.Environment.Systems {
		entries += len(s.ACL)
		for _, g := range s.Groups {
			entries += len(g.ACL)
		}
	}
	if len(pol.Groups()) != 10_000 || entries < 50_000 {
		t.Errorf("groups %d, entries %d", len(pol.Groups()), entries)
	}
}
