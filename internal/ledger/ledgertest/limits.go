package ledgertest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/grant"
)

// SlotGrant is a minimal grant of entitlement ent in state s with
// concurrency limit limit.
func SlotGrant(id, ent string, s grant.State, limit int) *grant.Grant {
	return &grant.Grant{
		ID: id, Entitlement: ent, Requester: "alice@example.com", State: s, ConcurrencyLimit: limit,
		CreateTime: Start, UpdateTime: Start,
	}
}

// MoveTo is an Update function that moves the grant to s, with limit as
// its ConcurrencyLimit when limit >= 0.
func MoveTo(s grant.State, limit int) func(*grant.Grant) error {
	return func(g *grant.Grant) error {
		if limit >= 0 {
			g.ConcurrencyLimit = limit
		}
		_, err := g.Transition(s, "jit.test", Start, "", "")
		return err
	}
}

// Race runs n copies of fn at once and returns their errors, in order.
func Race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			errs[i] = fn(i)
		})
	}
	start.Done()
	done.Wait()
	return errs
}

// Winners calls fn n times at once and counts the calls that won,
// reporting any error as a failure of round.
func Winners(t *testing.T, round string, n int, fn func(i int) (bool, error)) int {
	t.Helper()
	won := make([]bool, n)
	for _, err := range Race(n, func(i int) error {
		var err error
		won[i], err = fn(i)
		return err
	}) {
		if err != nil {
			t.Errorf("%s: %v", round, err)
		}
	}
	count := 0
	for _, w := range won {
		if w {
			count++
		}
	}
	return count
}

// Tally counts nil errors and errors wrapping want, and reports any other
// error with t.Errorf.
func Tally(t *testing.T, errs []error, want error) (ok, refused int) {
	t.Helper()
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, want):
			refused++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	return ok, refused
}

// Holders lists the IDs of ent's grants that hold a slot.
func Holders(t *testing.T, l grant.Ledger, ent string) []string {
	t.Helper()
	gs, err := l.List(t.Context(), grant.Query{Entitlement: ent, States: []grant.State{grant.Activating, grant.Active, grant.Revoking, grant.Withdrawing}})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return ids(gs)
}

// testLimitConcurrentCreates: of 20 simultaneous Creates of grants that
// take a slot under a limit of 1, exactly one succeeds and 19 fail with
// ErrLimit (grant/ledger.go: "checked atomically, so concurrent Creates
// never exceed the limit"), and the refused ones are not stored.
func testLimitConcurrentCreates(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	const n = 20
	errs := Race(n, func(i int) error {
		return l.Create(t.Context(), SlotGrant(fmt.Sprintf("g-race-%02d", i), "prod", grant.Activating, 1))
	})
	if ok, refused := Tally(t, errs, grant.ErrLimit); ok != 1 || refused != n-1 {
		t.Errorf("%d Creates succeeded and %d were refused with ErrLimit; want 1 and %d", ok, refused, n-1)
	}
	if got := Holders(t, l, "prod"); len(got) != 1 {
		t.Errorf("grants holding a slot: %v, want one", got)
	}
	if all, err := l.List(t.Context(), grant.Query{}); err != nil || len(all) != 1 {
		t.Errorf("stored grants: %v, %v; want only the one accepted", ids(all), err)
	}
}

// testLimitConcurrentApprovals: 20 pending grants approved at once under
// a limit of 5 (set by the Update function, as approval does): exactly 5
// move to ACTIVATING, 15 fail with ErrLimit and are left as they were
// (grant/ledger.go: "A write that moves the grant from a state that does
// not HoldsSlot into one that does is subject to its ConcurrencyLimit …
// ErrLimit, and nothing is written").
func testLimitConcurrentApprovals(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	const n, limit = 20, 5
	for i := range n {
		mustCreate(t, l, SlotGrant(fmt.Sprintf("g-approve-%02d", i), "prod", grant.ApprovalAwaited, 0))
	}
	errs := Race(n, func(i int) error {
		_, err := l.Update(t.Context(), fmt.Sprintf("g-approve-%02d", i), MoveTo(grant.Activating, limit))
		return err
	})
	if ok, refused := Tally(t, errs, grant.ErrLimit); ok != limit || refused != n-limit {
		t.Errorf("%d approvals succeeded and %d were refused with ErrLimit; want %d and %d", ok, refused, limit, n-limit)
	}
	if got := Holders(t, l, "prod"); len(got) != limit {
		t.Errorf("grants holding a slot: %v, want %d", got, limit)
	}
	for i, err := range errs {
		if err == nil {
			continue
		}
		want := normalized(t, SlotGrant(fmt.Sprintf("g-approve-%02d", i), "prod", grant.ApprovalAwaited, 0), 1)
		if diff := cmp.Diff(want, mustGet(t, l, want.ID)); diff != "" {
			t.Errorf("a refused approval wrote (-want +got):\n%s", diff)
		}
	}
}

// testLimitFreedOnLeaving: a grant holds its slot from ACTIVATING until
// its access is gone (grant.State.HoldsSlot) — through REVOKING and
// WITHDRAWING — and frees it on leaving: a new grant is refused until
// then and accepted after.
func testLimitFreedOnLeaving(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	paths := [][]grant.State{
		{grant.Active, grant.Ended},
		{grant.Active, grant.Revoking, grant.Revoked},
		{grant.Active, grant.Withdrawing, grant.Withdrawn},
		{grant.Activating, grant.ActivationFailed},
		{grant.Activating, grant.Withdrawing, grant.Withdrawn},
	}
	for p, path := range paths {
		ent := fmt.Sprint("ent-", p)
		holder := fmt.Sprintf("g-holder-%d", p)
		mustCreate(t, l, SlotGrant(holder, ent, path[0], 1))
		for i, s := range path {
			if i > 0 {
				if _, err := l.Update(t.Context(), holder, MoveTo(s, -1)); err != nil {
					t.Fatalf("%v: Update to %s: %v", path, s, err)
				}
			}
			err := l.Create(t.Context(), SlotGrant(fmt.Sprintf("g-probe-%d-%d", p, i), ent, grant.Activating, 1))
			switch {
			case s.HoldsSlot() && !errors.Is(err, grant.ErrLimit):
				t.Errorf("%v: with the holder in %s, a new grant: %v; want ErrLimit", path, s, err)
			case !s.HoldsSlot() && err != nil:
				t.Errorf("%v: with the holder in %s, a new grant: %v; want the slot free", path, s, err)
			}
		}
	}
}

// testLimitApprovalAfterFree: an approval refused for a full entitlement
// succeeds once the slot is freed (nothing about the refusal sticks).
func testLimitApprovalAfterFree(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	mustCreate(t, l, SlotGrant("g-first", "prod", grant.Active, 1))
	mustCreate(t, l, SlotGrant("g-waiting", "prod", grant.ApprovalAwaited, 0))
	if _, err := l.Update(t.Context(), "g-waiting", MoveTo(grant.Activating, 1)); !errors.Is(err, grant.ErrLimit) {
		t.Fatalf("approval with the slot taken: %v, want ErrLimit", err)
	}
	if _, err := l.Update(t.Context(), "g-first", MoveTo(grant.Ended, -1)); err != nil {
		t.Fatal(err)
	}
	got, err := l.Update(t.Context(), "g-waiting", MoveTo(grant.Activating, 1))
	if err != nil || got.State != grant.Activating || got.Version != 2 {
		t.Errorf("approval after the slot was freed: %+v, %v; want ACTIVATING at version 2", got, err)
	}
}

// testLimitRemovalNeverRefused: a grant whose activation failed with its
// binding's removal unverified can always be withdrawn or revoked, even
// when other grants hold every slot (ledger.TakesSlot): taking access away
// is never refused for want of a slot.
func testLimitRemovalNeverRefused(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	mustCreate(t, l, SlotGrant("g-holder", "prod", grant.Active, 1))
	for _, to := range []grant.State{grant.Withdrawing, grant.Revoking} {
		id := "g-failed-" + string(to)
		mustCreate(t, l, SlotGrant(id, "prod", grant.ActivationFailed, 1))
		if _, err := l.Update(t.Context(), id, MoveTo(to, 1)); err != nil {
			t.Errorf("ACTIVATION_FAILED → %s with every slot held: %v, want it written", to, err)
		}
	}
}

// testLimitNotRechecked: writes other than a move into a slot are not
// checked, even with a lower limit: ACTIVATING → ACTIVE and edits of an
// active grant succeed after the limit was lowered below the count
// (grant/ledger.go: "lowering a limit never cuts an active grant short").
// Creating a grant that does not take a slot is not checked either.
func testLimitNotRechecked(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	for _, id := range []string{"g-a", "g-b", "g-c"} {
		mustCreate(t, l, SlotGrant(id, "prod", grant.Activating, 3))
	}
	for _, id := range []string{"g-a", "g-b", "g-c"} {
		if _, err := l.Update(t.Context(), id, MoveTo(grant.Active, 1)); err != nil {
			t.Errorf("%s ACTIVATING → ACTIVE with the limit lowered to 1: %v", id, err)
		}
	}
	if _, err := l.Update(t.Context(), "g-a", func(g *grant.Grant) error {
		g.ConcurrencyLimit = 1
		g.Record("jit.test", Start, "", "an edit")
		return nil
	}); err != nil {
		t.Errorf("edit of an active grant over the limit: %v", err)
	}
	if _, err := l.Update(t.Context(), "g-b", MoveTo(grant.Withdrawing, 1)); err != nil {
		t.Errorf("ACTIVE → WITHDRAWING over the limit: %v", err)
	}
	if err := l.Create(t.Context(), SlotGrant("g-pending", "prod", grant.ApprovalAwaited, 1)); err != nil {
		t.Errorf("a pending grant (no slot) in a full entitlement: %v", err)
	}
	if err := l.Create(t.Context(), SlotGrant("g-new", "prod", grant.Activating, 3)); !errors.Is(err, grant.ErrLimit) {
		t.Errorf("a new grant with 3 holding a slot, limit 3: %v, want ErrLimit", err)
	}
}

// testLimitPerEntitlement: only grants of the same entitlement count.
func testLimitPerEntitlement(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	mustCreate(t, l, SlotGrant("g-a1", "ent-a", grant.Active, 1))
	mustCreate(t, l, SlotGrant("g-b1", "ent-b", grant.Active, 1))
	mustCreate(t, l, SlotGrant("g-b2", "ent-b", grant.ApprovalAwaited, 0))
	if _, err := l.Update(t.Context(), "g-b2", MoveTo(grant.Activating, 2)); err != nil {
		t.Errorf("second slot of ent-b, limit 2, with ent-a full: %v", err)
	}
	if err := l.Create(t.Context(), SlotGrant("g-c1", "ent-c", grant.Activating, 1)); err != nil {
		t.Errorf("first slot of ent-c: %v", err)
	}
	if err := l.Create(t.Context(), SlotGrant("g-a2", "ent-a", grant.Activating, 1)); !errors.Is(err, grant.ErrLimit) {
		t.Errorf("second slot of ent-a, limit 1: %v, want ErrLimit", err)
	}
}

// testLimitZero: ConcurrencyLimit 0 is no limit.
func testLimitZero(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	for i := range 5 {
		mustCreate(t, l, SlotGrant(fmt.Sprint("g-c", i), "prod", grant.Active, 0))
		mustCreate(t, l, SlotGrant(fmt.Sprint("g-u", i), "prod", grant.ApprovalAwaited, 0))
		if _, err := l.Update(t.Context(), fmt.Sprint("g-u", i), MoveTo(grant.Activating, 0)); err != nil {
			t.Errorf("approval without a limit: %v", err)
		}
	}
	if got := Holders(t, l, "prod"); len(got) != 10 {
		t.Errorf("%d grants hold a slot, want 10", len(got))
	}
}

// testLimitIntroducedLater: grants that took a slot while the entitlement
// had no limit count against a limit introduced later (package ledger's
// rule: every grant holding a slot counts), so the limit holds from the
// first new grant on, and none of them is cut short.
func testLimitIntroducedLater(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	for i := range 3 {
		mustCreate(t, l, SlotGrant(fmt.Sprint("g-old", i), "prod", grant.Active, 0))
	}
	mustCreate(t, l, SlotGrant("g-waiting", "prod", grant.ApprovalAwaited, 0))
	if err := l.Create(t.Context(), SlotGrant("g-new", "prod", grant.Activating, 3)); !errors.Is(err, grant.ErrLimit) {
		t.Errorf("Create under a new limit of 3 with 3 old grants active: %v, want ErrLimit", err)
	}
	if _, err := l.Update(t.Context(), "g-waiting", MoveTo(grant.Activating, 2)); !errors.Is(err, grant.ErrLimit) {
		t.Errorf("approval under a new limit of 2 with 3 old grants active: %v, want ErrLimit", err)
	}
	if err := l.Create(t.Context(), SlotGrant("g-new4", "prod", grant.Activating, 4)); err != nil {
		t.Errorf("Create under a limit of 4 with 3 active: %v", err)
	}
	if _, err := l.Update(t.Context(), "g-old0", MoveTo(grant.Ended, -1)); err != nil {
		t.Errorf("an old grant ends: %v", err)
	}
}

// testLimitRefusalWritesNothing: a refused Create stores no grant and
// does not record its RequestKey; a refused Update leaves the grant as it
// was and returns no grant.
func testLimitRefusalWritesNothing(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	mustCreate(t, l, SlotGrant("g-holder", "prod", grant.Active, 1))
	g := SlotGrant("g-refused", "prod", grant.Activating, 1)
	g.RequestKey = "envelope:bot@example.com/limit-1"
	if err := l.Create(t.Context(), g); !errors.Is(err, grant.ErrLimit) {
		t.Fatalf("Create: %v, want ErrLimit", err)
	}
	if _, err := l.Get(t.Context(), g.ID); !errors.Is(err, grant.ErrNotFound) {
		t.Errorf("refused grant stored: Get: %v", err)
	}
	if first, err := l.Once(t.Context(), g.RequestKey, time.Hour); err != nil || !first {
		t.Errorf("Once(key of the refused Create) = %v, %v; want true: the key must not be consumed", first, err)
	}

	mustCreate(t, l, SlotGrant("g-waiting", "prod", grant.ApprovalAwaited, 0))
	want := mustGet(t, l, "g-waiting")
	got, err := l.Update(t.Context(), "g-waiting", MoveTo(grant.Activating, 1))
	if !errors.Is(err, grant.ErrLimit) || got != nil {
		t.Errorf("Update = %+v, %v; want nil, ErrLimit", got, err)
	}
	if diff := cmp.Diff(want, mustGet(t, l, "g-waiting")); diff != "" {
		t.Errorf("refused Update wrote (-want +got):\n%s", diff)
	}
}
