package ledgertest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/grant"
)

// listFixture is six grants that differ in every field a Query selects on.
// e and f share a CreateTime, so the tie-break (ID descending) shows.
func listFixture() []*grant.Grant {
	mk := func(id, requester, entitlement string, state grant.State, created time.Duration, approvers []string, unpublished bool, end time.Duration) *grant.Grant {
		g := &grant.Grant{
			ID: id, Requester: requester, Entitlement: entitlement, State: state,
			CreateTime: Start.Add(created), UpdateTime: Start.Add(created), Approvers: approvers,
			Timeline: []grant.Entry{{Time: Start.Add(created), State: state, EventType: "jit.grant.requested", EventID: id + "-1", Published: true}},
		}
		if unpublished {
			g.Timeline = append(g.Timeline, grant.Entry{Time: Start.Add(created), State: state, EventType: "jit.test", EventID: id + "-2"})
		}
		if end != 0 {
			g.EndTime = Start.Add(end)
		}
		return g
	}
	return []*grant.Grant{
		mk("g-a", "alice@example.com", "prod", grant.ApprovalAwaited, 1*time.Minute, []string{"user:carol@example.com", "group:mgrs@example.com"}, true, 0),
		mk("g-b", "bob@example.com", "prod", grant.Active, 2*time.Minute, []string{"user:carol@example.com"}, false, 2*time.Hour),
		mk("g-c", "alice@example.com", "dev", grant.Active, 3*time.Minute, nil, true, 30*time.Minute),
		mk("g-d", "bob@example.com", "dev", grant.Ended, 4*time.Minute, nil, false, time.Hour),
		mk("g-e", "alice@example.com", "prod", grant.Denied, 5*time.Minute, []string{"group:mgrs@example.com"}, false, 0),
		mk("g-f", "carol@example.com", "prod", grant.ApprovalAwaited, 5*time.Minute, []string{"user:dave@example.com"}, true, 0),
	}
}

func ids(gs []*grant.Grant) []string {
	out := []string{}
	for _, g := range gs {
		out = append(out, g.ID)
	}
	return out
}

// testList: each filter of grant.Query alone and combined, Limit, and the
// order, newest CreateTime first (grant/ledger.go: "Zero fields do not
// filter. Results are ordered by CreateTime, newest first."). Filters are
// exact string matches; Approvers selects grants listing any of them;
// EndBefore is strict and skips grants without an end.
func testList(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	for _, g := range listFixture() {
		mustCreate(t, l, g)
	}
	tests := []struct {
		name string
		q    grant.Query
		want []string
	}{
		{"all", grant.Query{}, []string{"g-f", "g-e", "g-d", "g-c", "g-b", "g-a"}},
		{"requester", grant.Query{Requester: "alice@example.com"}, []string{"g-e", "g-c", "g-a"}},
		{"requester is case-sensitive", grant.Query{Requester: "Alice@example.com"}, []string{}},
		{"entitlement", grant.Query{Entitlement: "dev"}, []string{"g-d", "g-c"}},
		{"one state", grant.Query{States: []grant.State{grant.Active}}, []string{"g-c", "g-b"}},
		{"two states", grant.Query{States: []grant.State{grant.ApprovalAwaited, grant.Denied}}, []string{"g-f", "g-e", "g-a"}},
		{"repeated state", grant.Query{States: []grant.State{grant.Active, grant.Active}}, []string{"g-c", "g-b"}},
		{"empty states", grant.Query{States: []grant.State{}}, []string{"g-f", "g-e", "g-d", "g-c", "g-b", "g-a"}},
		{"approver", grant.Query{Approvers: []string{"user:carol@example.com"}}, []string{"g-b", "g-a"}},
		{"any approver", grant.Query{Approvers: []string{"group:mgrs@example.com", "user:dave@example.com"}}, []string{"g-f", "g-e", "g-a"}},
		{"unknown approver", grant.Query{Approvers: []string{"user:nobody@example.com"}}, []string{}},
		{"unpublished", grant.Query{Unpublished: true}, []string{"g-f", "g-c", "g-a"}},
		{"end before is strict", grant.Query{EndBefore: Start.Add(time.Hour)}, []string{"g-c"}},
		{"end before", grant.Query{EndBefore: Start.Add(time.Hour + 1)}, []string{"g-d", "g-c"}},
		{"end before, other zone", grant.Query{EndBefore: Start.Add(time.Hour + 1).In(time.FixedZone("", -8*3600))}, []string{"g-d", "g-c"}},
		{"end before, limit", grant.Query{EndBefore: Start.Add(3 * time.Hour), Limit: 1}, []string{"g-d"}},
		{"limit", grant.Query{Limit: 2}, []string{"g-f", "g-e"}},
		{"limit above count", grant.Query{Limit: 100}, []string{"g-f", "g-e", "g-d", "g-c", "g-b", "g-a"}},
		{"requester and states", grant.Query{Requester: "alice@example.com", States: []grant.State{grant.Active, grant.ApprovalAwaited}}, []string{"g-c", "g-a"}},
		{"approver and state", grant.Query{Approvers: []string{"user:carol@example.com"}, States: []grant.State{grant.ApprovalAwaited}}, []string{"g-a"}},
		{"entitlement, unpublished, limit", grant.Query{Entitlement: "prod", Unpublished: true, Limit: 1}, []string{"g-f"}},
		{"states and end before", grant.Query{States: []grant.State{grant.Active}, EndBefore: Start.Add(3 * time.Hour)}, []string{"g-c", "g-b"}},
		{"everything", grant.Query{
			Requester: "alice@example.com", Entitlement: "prod", States: []grant.State{grant.ApprovalAwaited},
			Approvers: []string{"group:mgrs@example.com"}, Unpublished: true, Limit: 5,
		}, []string{"g-a"}},
	}
	for _, tt := range tests {
		got, err := l.List(t.Context(), tt.q)
		if err != nil {
			t.Errorf("%s: List: %v", tt.name, err)
			continue
		}
		if diff := cmp.Diff(tt.want, ids(got)); diff != "" {
			t.Errorf("%s: List(%+v) IDs (-want +got):\n%s", tt.name, tt.q, diff)
		}
	}
}

// testListAfterUpdate: the fields a Query selects on follow Updates (an
// implementation that indexes them separately must keep the index in step).
func testListAfterUpdate(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	g := listFixture()[0] // awaiting, approver carol, unpublished, no end
	mustCreate(t, l, g)
	if _, err := l.Update(t.Context(), g.ID, func(cur *grant.Grant) error {
		cur.State = grant.Active
		cur.Requester = "zoe@example.com"
		cur.Entitlement = "dev"
		cur.Approvers = []string{"user:dave@example.com"}
		for _, e := range cur.Unpublished() {
			cur.MarkPublished(e.EventID)
		}
		cur.EndTime = Start.Add(time.Hour)
		return nil
	}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	tests := []struct {
		name string
		q    grant.Query
		want []string
	}{
		{"old state", grant.Query{States: []grant.State{grant.ApprovalAwaited}}, []string{}},
		{"new state", grant.Query{States: []grant.State{grant.Active}}, []string{"g-a"}},
		{"old requester", grant.Query{Requester: "alice@example.com"}, []string{}},
		{"new requester", grant.Query{Requester: "zoe@example.com"}, []string{"g-a"}},
		{"old entitlement", grant.Query{Entitlement: "prod"}, []string{}},
		{"new entitlement", grant.Query{Entitlement: "dev"}, []string{"g-a"}},
		{"old approver", grant.Query{Approvers: []string{"user:carol@example.com"}}, []string{}},
		{"removed approver", grant.Query{Approvers: []string{"group:mgrs@example.com"}}, []string{}},
		{"new approver", grant.Query{Approvers: []string{"user:dave@example.com"}}, []string{"g-a"}},
		{"published now", grant.Query{Unpublished: true}, []string{}},
		{"end set", grant.Query{EndBefore: Start.Add(2 * time.Hour)}, []string{"g-a"}},
	}
	for _, tt := range tests {
		got, err := l.List(t.Context(), tt.q)
		if err != nil {
			t.Errorf("%s: List: %v", tt.name, err)
			continue
		}
		if diff := cmp.Diff(tt.want, ids(got)); diff != "" {
			t.Errorf("%s: List IDs (-want +got):\n%s", tt.name, diff)
		}
	}
	// And back: the end cleared, an event unpublished again.
	if _, err := l.Update(t.Context(), g.ID, func(cur *grant.Grant) error {
		cur.EndTime = time.Time{}
		cur.Record("jit.test", Start, "", "")
		return nil
	}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if got, err := l.List(t.Context(), grant.Query{EndBefore: Start.Add(2 * time.Hour)}); err != nil || len(got) != 0 {
		t.Errorf("List(EndBefore) after clearing the end: %v, %v; want nothing", ids(got), err)
	}
	if got, err := l.List(t.Context(), grant.Query{Unpublished: true}); err != nil || len(got) != 1 {
		t.Errorf("List(Unpublished) after recording an event: %v, %v; want g-a", ids(got), err)
	}
}

// testListManyDisjunctions: a query whose States × Approvers exceeds
// Firestore's limit of 30 disjunctions (and "in"/"array-contains-any" lists
// longer than 30) still works, with its Limit.
// [https://firebase.google.com/docs/firestore/query-data/queries#limits_on_or_queries]
func testListManyDisjunctions(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	for i := range 6 {
		g := &grant.Grant{
			ID: fmt.Sprintf("g-dnf-%d", i), Requester: "alice@example.com", CreateTime: Start.Add(time.Duration(i) * time.Minute),
			State: []grant.State{grant.ApprovalAwaited, grant.Active}[i%2], Approvers: []string{fmt.Sprintf("user:a%d@example.com", i%3)},
		}
		mustCreate(t, l, g)
	}
	allStates := []grant.State{
		grant.ApprovalAwaited, grant.Scheduled, grant.Activating, grant.Active, grant.ActivationFailed, grant.Denied,
		grant.Expired, grant.Revoking, grant.Revoked, grant.Ended, grant.Withdrawing, grant.Withdrawn,
	}
	var manyApprovers []string
	for i := range 35 {
		manyApprovers = append(manyApprovers, fmt.Sprintf("user:a%d@example.com", i+1)) // a1, a2 match; a0 does not
	}
	tests := []struct {
		name string
		q    grant.Query
		want []string
	}{
		{"12 states x 3 approvers", grant.Query{States: allStates, Approvers: manyApprovers[:3]}, []string{"g-dnf-5", "g-dnf-4", "g-dnf-2", "g-dnf-1"}},
		{"12 states x 3 approvers, limit", grant.Query{States: allStates, Approvers: manyApprovers[:3], Limit: 3}, []string{"g-dnf-5", "g-dnf-4", "g-dnf-2"}},
		{"35 approvers", grant.Query{Approvers: manyApprovers, Limit: 2}, []string{"g-dnf-5", "g-dnf-4"}},
		{"35 approvers, one state", grant.Query{Approvers: manyApprovers, States: []grant.State{grant.Active}}, []string{"g-dnf-5", "g-dnf-1"}},
	}
	for _, tt := range tests {
		got, err := l.List(t.Context(), tt.q)
		if err != nil {
			t.Errorf("%s: List: %v", tt.name, err)
			continue
		}
		if diff := cmp.Diff(tt.want, ids(got)); diff != "" {
			t.Errorf("%s: List IDs (-want +got):\n%s", tt.name, diff)
		}
	}
}

// testListReturnsCopies: List returns whole grants at their current
// version, as copies.
func testListReturnsCopies(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	mustCreate(t, l, Full("g-listcopy"))
	if _, err := l.Update(t.Context(), "g-listcopy", func(cur *grant.Grant) error { cur.Justification = "edited"; return nil }); err != nil {
		t.Fatal(err)
	}
	want := mustGet(t, l, "g-listcopy")
	got, err := l.List(t.Context(), grant.Query{})
	if err != nil || len(got) != 1 {
		t.Fatalf("List: %v, %v", ids(got), err)
	}
	if diff := cmp.Diff(want, got[0]); diff != "" {
		t.Errorf("List differs from Get (-get +list):\n%s", diff)
	}
	got[0].Approvers[0] = "user:mallory@example.com"
	got[0].Inputs["ticket"] = "changed"
	if diff := cmp.Diff(want, mustGet(t, l, "g-listcopy")); diff != "" {
		t.Errorf("mutating a listed grant changed the store (-want +got):\n%s", diff)
	}
}

func testListNegativeLimit(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	if _, err := l.List(t.Context(), grant.Query{Limit: -1}); err == nil {
		t.Error("List with a negative limit succeeded")
	}
}

// testOnce: "Once records an idempotency key and reports whether this was
// the first time (true) or the key was already there (false)"
// (grant/ledger.go); keys are independent.
func testOnce(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	steps := []struct {
		key  string
		ttl  time.Duration
		want bool
	}{
		{"notify/g-1", time.Hour, true},
		{"notify/g-1", time.Hour, false},
		{"notify/g-2", time.Hour, true},
		{"notify/g-1", 48 * time.Hour, false},
		{"a key with spaces, slashes // and ünïcödé", time.Hour, true},
		{"a key with spaces, slashes // and ünïcödé", time.Hour, false},
	}
	for i, s := range steps {
		got, err := l.Once(t.Context(), s.key, s.ttl)
		if err != nil {
			t.Fatalf("step %d: Once(%q): %v", i, s.key, err)
		}
		if got != s.want {
			t.Errorf("step %d: Once(%q) = %v, want %v", i, s.key, got, s.want)
		}
	}
}

// testOnceTTL: "Keys expire after ttl": a key is there for exactly ttl on
// the ledger's clock, a repeated call does not extend it, and an expired
// key is recorded afresh with the new ttl.
func testOnceTTL(t *testing.T, open Open) {
	l, clk := ledgerAt(t, open)
	steps := []struct {
		advance time.Duration
		ttl     time.Duration
		want    bool
	}{
		{0, 10 * time.Minute, true},
		{5 * time.Minute, time.Hour, false}, // does not extend to 1h
		{5*time.Minute - 1, time.Hour, false},
		{1, 2 * time.Minute, true}, // expired exactly at ttl; now 2m
		{2*time.Minute - 1, 2 * time.Minute, false},
		{1, 2 * time.Minute, true},
		{0, 2 * time.Minute, false},
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		got, err := l.Once(t.Context(), "revoke/g-ttl", s.ttl)
		if err != nil {
			t.Fatalf("step %d: Once: %v", i, err)
		}
		if got != s.want {
			t.Errorf("step %d (at +%v): Once = %v, want %v (does open pass the clock to the ledger?)", i, clk.Now().Sub(Start), got, s.want)
		}
	}
}

func testOnceInvalid(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	for _, ttl := range []time.Duration{0, -time.Second} {
		if _, err := l.Once(t.Context(), "k", ttl); err == nil {
			t.Errorf("Once with ttl %v succeeded", ttl)
		}
	}
	if _, err := l.Once(t.Context(), "", time.Hour); err == nil {
		t.Error("Once with an empty key succeeded")
	}
	// The refused calls recorded nothing.
	if first, err := l.Once(t.Context(), "k", time.Hour); err != nil || !first {
		t.Errorf("Once(k) after refused calls = %v, %v; want true", first, err)
	}
}

// testOnceConcurrent: of many simultaneous calls with one key exactly one
// is first, both for a new key and for an expired one.
func testOnceConcurrent(t *testing.T, open Open) {
	l, clk := ledgerAt(t, open)
	race := func(round string) {
		const n = 20
		var wg sync.WaitGroup
		firsts := make(chan bool, n)
		for range n {
			wg.Go(func() {
				first, err := l.Once(t.Context(), "activate/g-race", time.Minute)
				if err != nil {
					t.Errorf("%s: Once: %v", round, err)
				}
				firsts <- first
			})
		}
		wg.Wait()
		close(firsts)
		count := 0
		for f := range firsts {
			if f {
				count++
			}
		}
		if count != 1 {
			t.Errorf("%s: %d of %d concurrent Once calls were first, want 1", round, count, n)
		}
	}
	race("new key")
	clk.Advance(time.Minute)
	race("expired key")
}
