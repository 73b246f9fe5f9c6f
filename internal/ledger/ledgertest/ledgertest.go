// Package ledgertest is the contract test suite of grant.Ledger. Every
// implementation runs it, so the embedded SQLite ledger and the Firestore
// ledger of production cannot drift apart: the rules tested here are the
// doc comments of internal/grant/ledger.go plus the shared normalization of
// package ledger.
package ledgertest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/ledger"
)

// Open returns a new, empty ledger whose Once reads the time from clk; it
// registers the ledger's Close with t.Cleanup.
type Open func(t *testing.T, clk clock.Clock) grant.Ledger

// Start is the manual clock's time at the start of every test.
var Start = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)

// Run runs the whole suite, every test in parallel on a ledger of its own.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, Open)
	}{
		{"RoundTrip", testRoundTrip},
		{"RoundTripSparse", testRoundTripSparse},
		{"CreateExists", testCreateExists},
		{"CreateInvalidID", testCreateInvalidID},
		{"CreateDoesNotKeepCaller", testCreateDoesNotKeepCaller},
		{"GetNotFound", testGetNotFound},
		{"GetReturnsCopies", testGetReturnsCopies},
		{"UpdateApplies", testUpdateApplies},
		{"UpdateNoChange", testUpdateNoChange},
		{"UpdateFnError", testUpdateFnError},
		{"UpdateNotFound", testUpdateNotFound},
		{"UpdateVersion", testUpdateVersion},
		{"UpdateKeepsID", testUpdateKeepsID},
		{"UpdateConcurrent", testUpdateConcurrent},
		{"UpdateConcurrentGrants", testUpdateConcurrentGrants},
		{"List", testList},
		{"ListAfterUpdate", testListAfterUpdate},
		{"ListManyDisjunctions", testListManyDisjunctions},
		{"ListReturnsCopies", testListReturnsCopies},
		{"ListNegativeLimit", testListNegativeLimit},
		{"Once", testOnce},
		{"OnceTTL", testOnceTTL},
		{"OnceInvalid", testOnceInvalid},
		{"OnceConcurrent", testOnceConcurrent},
		{"LimitConcurrentCreates", testLimitConcurrentCreates},
		{"LimitConcurrentApprovals", testLimitConcurrentApprovals},
		{"LimitFreedOnLeaving", testLimitFreedOnLeaving},
		{"LimitApprovalAfterFree", testLimitApprovalAfterFree},
		{"LimitNotRechecked", testLimitNotRechecked},
		{"LimitRemovalNeverRefused", testLimitRemovalNeverRefused},
		{"LimitPerEntitlement", testLimitPerEntitlement},
		{"LimitZero", testLimitZero},
		{"LimitIntroducedLater", testLimitIntroducedLater},
		{"LimitRefusalWritesNothing", testLimitRefusalWritesNothing},
		{"RequestKeyTwice", testRequestKeyTwice},
		{"RequestKeyAfterOnce", testRequestKeyAfterOnce},
		{"RequestKeyThenOnce", testRequestKeyThenOnce},
		{"RequestKeyConcurrent", testRequestKeyConcurrent},
		{"RequestKeyFailedCreate", testRequestKeyFailedCreate},
		{"RequestKeyTTL", testRequestKeyTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open)
		})
	}
}

// ledgerAt opens a ledger on a manual clock stopped at Start.
func ledgerAt(t *testing.T, open Open) (grant.Ledger, *clock.Manual) {
	t.Helper()
	clk := clock.NewManual(Start)
	return open(t, clk), clk
}

// Full returns a grant with every field set, times in a non-UTC zone with
// nanoseconds, so a round trip that drops or rounds anything shows.
func Full(id string) *grant.Grant {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	at := func(d time.Duration) time.Time { return Start.In(zone).Add(d) }
	return &grant.Grant{
		ID:            id,
		Entitlement:   "prod-admin",
		Requester:     "alice@example.com",
		Justification: "INC-42: database failover",
		Inputs: map[string]any{
			"ticket":  "INC-42",
			"hours":   1.5,
			"count":   3, // an int comes back as float64, as from JSON
			"urgent":  true,
			"":        "empty key",
			"a.b":     "dotted key",
			"__x__":   "reserved-looking key",
			"regions": []any{"eu", "us"},
		},
		RequestedDuration: 90*time.Minute + 1,
		Privileges: []grant.Privilege{
			{Resource: "projects/p1", Role: "roles/cloudsql.admin", Condition: `resource.name.startsWith("projects/p1/instances/db")`},
			{Resource: "folders/123", Role: "roles/viewer"},
		},
		State:             grant.Active,
		ApprovalRequired:  true,
		RequiredApprovals: 2,
		ApprovalDeadline:  at(time.Hour),
		Approvers:         []string{"user:carol@example.com", "group:managers@example.com"},
		Reviewers:         []string{"carol@example.com"},
		Decisions: []grant.Decision{
			{Approver: "carol@example.com", Approved: true, Reason: "ok", Time: at(time.Minute + 7)},
			{Approver: "dave@example.com", Approved: false, Time: at(2*time.Minute + 11)},
		},
		CreateTime:            at(0),
		UpdateTime:            at(3 * time.Minute),
		StartTime:             at(3*time.Minute + 1),
		EndTime:               at(93*time.Minute + 1),
		Execution:             "projects/p/locations/l/workflows/grant-lifecycle/executions/e1",
		ApprovalCallback:      "https://workflowexecutions.googleapis.com/v1/cb/approval",
		EndCallback:           "https://workflowexecutions.googleapis.com/v1/cb/end",
		RevocationVerified:    true,
		RequesterHostedDomain: "example.com",
		RequestKey:            "envelope:incident-bot@tools.iam.gserviceaccount.com/" + id,
		// Ample for the tests that create several Full grants of one
		// entitlement: it is stored, not exercised, here.
		ConcurrencyLimit: 50,
		Unreachable:      []string{"projects/gone-project"},
		Timeline: []grant.Entry{
			{Time: at(0), State: grant.ApprovalAwaited, EventType: "jit.grant.requested", EventID: id + "-1", Actor: "alice@example.com", Message: "awaiting", Published: true},
			{Time: at(3 * time.Minute), State: grant.Active, EventType: "jit.grant.activated", EventID: id + "-2"},
		},
		Version: 7, // ignored by Create
	}
}

// normalized is what a ledger returns for g: package ledger's Clone, with
// version v.
func normalized(t *testing.T, g *grant.Grant, v int64) *grant.Grant {
	t.Helper()
	c, err := ledger.Clone(g)
	if err != nil {
		t.Fatal(err)
	}
	c.Version = v
	return c
}

func mustCreate(t *testing.T, l grant.Ledger, g *grant.Grant) {
	t.Helper()
	if err := l.Create(t.Context(), g); err != nil {
		t.Fatalf("Create(%s): %v", g.ID, err)
	}
}

func mustGet(t *testing.T, l grant.Ledger, id string) *grant.Grant {
	t.Helper()
	g, err := l.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return g
}

// testRoundTrip: every field of a Grant survives Create and Get, times
// come back in UTC with their nanoseconds, and Version starts at 1
// (grant/ledger.go: "Create stores a new grant (Version 1)").
func testRoundTrip(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	g := Full("g-roundtrip")
	checkAllFieldsSet(t, g)
	mustCreate(t, l, g)
	got := mustGet(t, l, g.ID)

	want := normalized(t, g, 1)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Get after Create (-want +got):\n%s", diff)
	}
	// The explicit expectations behind normalized, so that a change to
	// package ledger cannot quietly weaken them.
	if got.CreateTime.Location() != time.UTC || !got.CreateTime.Equal(g.CreateTime) || got.CreateTime.Nanosecond() != g.CreateTime.Nanosecond() {
		t.Errorf("CreateTime = %v, want %v in UTC with nanoseconds", got.CreateTime, g.CreateTime)
	}
	if got.Timeline[1].Time.Location() != time.UTC || !got.Timeline[1].Time.Equal(g.Timeline[1].Time) {
		t.Errorf("Timeline[1].Time = %v, want %v in UTC", got.Timeline[1].Time, g.Timeline[1].Time)
	}
	if got.RequestedDuration != g.RequestedDuration {
		t.Errorf("RequestedDuration = %v, want %v", got.RequestedDuration, g.RequestedDuration)
	}
	if n, ok := got.Inputs["count"].(float64); !ok || n != 3 {
		t.Errorf(`Inputs["count"] = %#v, want float64(3)`, got.Inputs["count"])
	}
	if got.Version != 1 {
		t.Errorf("Version = %d, want 1", got.Version)
	}
}

// testRoundTripSparse: a grant with only an ID and zero everything else
// comes back as it went in: zero times stay zero (not the epoch), nothing
// appears from nowhere.
func testRoundTripSparse(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	g := &grant.Grant{ID: "g-sparse", Privileges: []grant.Privilege{}, Inputs: map[string]any{}}
	mustCreate(t, l, g)
	got := mustGet(t, l, g.ID)
	if diff := cmp.Diff(&grant.Grant{ID: "g-sparse", Version: 1}, got); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}
}

// checkAllFieldsSet fails if a field of g is zero: a field added to Grant
// must be added to Full, so that the round trip proves it is stored.
func checkAllFieldsSet(t *testing.T, g *grant.Grant) {
	t.Helper()
	v := reflect.ValueOf(g).Elem()
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("Full leaves Grant.%s zero: set it so the round trip covers it", v.Type().Field(i).Name)
		}
	}
	for _, s := range []any{g.Decisions[0], g.Timeline[0], g.Privileges[0]} {
		sv := reflect.ValueOf(s)
		for i := range sv.NumField() {
			if sv.Field(i).IsZero() {
				t.Errorf("Full leaves %s.%s zero", sv.Type().Name(), sv.Type().Field(i).Name)
			}
		}
	}
}

// testCreateExists: Create of a taken ID fails with ErrExists and leaves
// the stored grant alone (grant/ledger.go).
func testCreateExists(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	mustCreate(t, l, Full("g-exists"))
	again := Full("g-exists")
	again.Requester = "mallory@example.com"
	err := l.Create(t.Context(), again)
	if !errors.Is(err, grant.ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	if got := mustGet(t, l, "g-exists"); got.Requester != "alice@example.com" || got.Version != 1 {
		t.Errorf("after refused Create: requester %q version %d, want the original at version 1", got.Requester, got.Version)
	}
}

// testCreateInvalidID: IDs Firestore cannot use as document IDs are
// refused by every implementation (package ledger, CheckID), so a grant
// the embedded ledger accepts never fails in production.
func testCreateInvalidID(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	for _, id := range []string{"", "a/b", ".", "..", "__id__"} {
		g := Full(id)
		if err := l.Create(t.Context(), g); !errors.Is(err, ledger.ErrInvalidID) {
			t.Errorf("Create(%q): %v, want ErrInvalidID", id, err)
		}
		if _, err := l.Get(t.Context(), id); !errors.Is(err, grant.ErrNotFound) {
			t.Errorf("Get(%q): %v, want ErrNotFound", id, err)
		}
	}
}

// testCreateDoesNotKeepCaller: the ledger keeps no reference to the grant
// it was given, and does not modify it.
func testCreateDoesNotKeepCaller(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	g := Full("g-caller")
	want := normalized(t, g, 1)
	mustCreate(t, l, g)
	if g.Version != 7 {
		t.Errorf("Create changed the caller's Version to %d", g.Version)
	}
	g.State = grant.Revoked
	g.Inputs["ticket"] = "changed"
	g.Approvers[0] = "user:mallory@example.com"
	g.Timeline[0].Published = false
	if diff := cmp.Diff(want, mustGet(t, l, g.ID)); diff != "" {
		t.Errorf("mutating the created grant changed the store (-want +got):\n%s", diff)
	}
}

func testGetNotFound(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	if _, err := l.Get(t.Context(), "g-missing"); !errors.Is(err, grant.ErrNotFound) {
		t.Errorf("Get of a missing grant: %v, want ErrNotFound", err)
	}
}

// testGetReturnsCopies: "Get returns a copy of the grant" (grant/ledger.go).
func testGetReturnsCopies(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	mustCreate(t, l, Full("g-copy"))
	first := mustGet(t, l, "g-copy")
	want := normalized(t, first, first.Version)
	first.State = grant.Revoked
	first.Inputs["ticket"] = "changed"
	first.Approvers[0] = "user:mallory@example.com"
	first.Decisions[0].Approved = false
	first.Timeline[0].Published = false
	first.Privileges[0].Role = "roles/owner"
	if diff := cmp.Diff(want, mustGet(t, l, "g-copy")); diff != "" {
		t.Errorf("mutating a returned grant changed the store (-want +got):\n%s", diff)
	}
}

// testUpdateApplies: Update applies fn and stores the result; what it
// returns is what Get then returns, and is a copy too.
func testUpdateApplies(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	g := Full("g-update")
	g.State = grant.ApprovalAwaited
	mustCreate(t, l, g)
	at := Start.Add(time.Hour)
	got, err := l.Update(t.Context(), g.ID, func(cur *grant.Grant) error {
		cur.Decisions = append(cur.Decisions, grant.Decision{Approver: "erin@example.com", Approved: true, Time: at})
		_, err := cur.Transition(grant.Activating, "jit.activation.requested", at, "erin@example.com", "approved")
		return err
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if got.State != grant.Activating || len(got.Decisions) != 3 || len(got.Timeline) != 3 || got.Version != 2 {
		t.Errorf("Update returned state %s, %d decisions, %d entries, version %d; want ACTIVATING, 3, 3, 2",
			got.State, len(got.Decisions), len(got.Timeline), got.Version)
	}
	stored := mustGet(t, l, g.ID)
	if diff := cmp.Diff(got, stored); diff != "" {
		t.Errorf("Get after Update differs from Update's result (-update +get):\n%s", diff)
	}
	got.State = grant.Revoked
	if s := mustGet(t, l, g.ID).State; s != grant.Activating {
		t.Errorf("mutating Update's result changed the store: state %s", s)
	}
}

// testUpdateNoChange: "ErrNoChange from fn skips the write and returns the
// grant as read (with a nil error)" (grant/ledger.go), also when wrapped,
// and even if fn had already modified its argument.
func testUpdateNoChange(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	mustCreate(t, l, Full("g-nochange"))
	want := normalized(t, Full("g-nochange"), 1)
	for _, ret := range []error{grant.ErrNoChange, fmt.Errorf("already published: %w", grant.ErrNoChange)} {
		got, err := l.Update(t.Context(), "g-nochange", func(cur *grant.Grant) error {
			cur.State = grant.Revoked
			cur.Approvers = nil
			return ret
		})
		if err != nil {
			t.Fatalf("Update returning %v: %v, want nil", ret, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Update returning %v did not return the grant as read (-want +got):\n%s", ret, diff)
		}
		if diff := cmp.Diff(want, mustGet(t, l, "g-nochange")); diff != "" {
			t.Errorf("Update returning %v wrote (-want +got):\n%s", ret, diff)
		}
	}
}

// testUpdateFnError: an error from fn is returned unchanged, and nothing
// is written.
func testUpdateFnError(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	mustCreate(t, l, Full("g-fnerr"))
	want := normalized(t, Full("g-fnerr"), 1)
	sentinel := errors.New("policy says no")
	got, err := l.Update(t.Context(), "g-fnerr", func(cur *grant.Grant) error {
		cur.State = grant.Revoked
		return sentinel
	})
	if err != sentinel { //nolint:errorlint // the contract is "unchanged"
		t.Errorf("Update: error %v (%T), want the function's error itself", err, err)
	}
	if got != nil {
		t.Errorf("Update returned a grant with its error: %+v", got)
	}
	if diff := cmp.Diff(want, mustGet(t, l, "g-fnerr")); diff != "" {
		t.Errorf("failed Update wrote (-want +got):\n%s", diff)
	}
}

func testUpdateNotFound(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	called := false
	_, err := l.Update(t.Context(), "g-missing", func(*grant.Grant) error { called = true; return nil })
	if !errors.Is(err, grant.ErrNotFound) {
		t.Errorf("Update of a missing grant: %v, want ErrNotFound", err)
	}
	if called {
		t.Error("Update called fn for a missing grant")
	}
	if _, err := l.Get(t.Context(), "g-missing"); !errors.Is(err, grant.ErrNotFound) {
		t.Errorf("Update of a missing grant created it: Get: %v", err)
	}
}

// testUpdateVersion: "Version increases by one per write"; fn sees the
// current version, and a Version set by fn is ignored.
func testUpdateVersion(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	mustCreate(t, l, Full("g-version"))
	for want := int64(2); want <= 4; want++ {
		got, err := l.Update(t.Context(), "g-version", func(cur *grant.Grant) error {
			if cur.Version != want-1 {
				t.Errorf("fn saw version %d, want %d", cur.Version, want-1)
			}
			cur.Version = 100
			cur.Justification = fmt.Sprint("edit ", want)
			return nil
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if got.Version != want {
			t.Errorf("Update returned version %d, want %d", got.Version, want)
		}
		if v := mustGet(t, l, "g-version").Version; v != want {
			t.Errorf("Get after Update: version %d, want %d", v, want)
		}
	}
}

// testUpdateKeepsID: fn cannot move a grant to another ID.
func testUpdateKeepsID(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	mustCreate(t, l, Full("g-keepid"))
	if _, err := l.Update(t.Context(), "g-keepid", func(cur *grant.Grant) error { cur.ID = "g-other"; return nil }); err == nil {
		t.Error("Update that changes the ID succeeded")
	}
	if v := mustGet(t, l, "g-keepid").Version; v != 1 {
		t.Errorf("refused Update wrote: version %d", v)
	}
	if _, err := l.Get(t.Context(), "g-other"); !errors.Is(err, grant.ErrNotFound) {
		t.Errorf("refused Update created g-other: %v", err)
	}
}

// testUpdateConcurrent: concurrent Updates of one grant lose nothing: "a
// concurrent write makes it re-read and re-apply fn" (grant/ledger.go).
func testUpdateConcurrent(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	g := Full("g-concurrent")
	g.Decisions = nil
	mustCreate(t, l, g)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := l.Update(t.Context(), g.ID, func(cur *grant.Grant) error {
				cur.Decisions = append(cur.Decisions, grant.Decision{Approver: fmt.Sprintf("user%02d@example.com", i), Approved: true, Time: Start})
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Update: %v", err)
		}
	}
	got := mustGet(t, l, g.ID)
	var approvers []string
	for _, d := range got.Decisions {
		approvers = append(approvers, d.Approver)
	}
	slices.Sort(approvers)
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("user%02d@example.com", i))
	}
	if diff := cmp.Diff(want, approvers); diff != "" {
		t.Errorf("decisions after %d concurrent Updates (-want +got):\n%s", n, diff)
	}
	if got.Version != n+1 {
		t.Errorf("version %d after %d Updates, want %d", got.Version, n, n+1)
	}
}

// testUpdateConcurrentGrants: many grants updated at once, as the
// embedded pipeline does, all succeed.
func testUpdateConcurrentGrants(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	const grants, perGrant = 10, 5
	for i := range grants {
		g := Full(fmt.Sprintf("g-many-%02d", i))
		g.Timeline = nil
		mustCreate(t, l, g)
	}
	var wg sync.WaitGroup
	for i := range grants * perGrant {
		wg.Go(func() {
			id := fmt.Sprintf("g-many-%02d", i%grants)
			if _, err := l.Update(t.Context(), id, func(cur *grant.Grant) error {
				cur.Record("jit.test", Start, "", fmt.Sprint(i))
				return nil
			}); err != nil {
				t.Errorf("Update(%s): %v", id, err)
			}
		})
	}
	wg.Wait()
	for i := range grants {
		if got := mustGet(t, l, fmt.Sprintf("g-many-%02d", i)); len(got.Timeline) != perGrant || got.Version != perGrant+1 {
			t.Errorf("%s: %d entries, version %d; want %d, %d", got.ID, len(got.Timeline), got.Version, perGrant, perGrant+1)
		}
	}
}
