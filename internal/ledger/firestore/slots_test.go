package firestore_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	gfs "cloud.google.com/go/firestore"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/ledger/firestore"
	"github.com/jitpipeline/jit/internal/ledger/ledgertest"
)

// slotsDoc reads the slot list document of entitlement, bypassing the
// ledger; nil if there is none.
func slotsDoc(t *testing.T, prefix, entitlement string) map[string]any {
	t.Helper()
	sum := sha256.Sum256([]byte(entitlement))
	snap, err := rawClient(t).Collection(prefix + firestore.SlotsCollection).Doc(hex.EncodeToString(sum[:])).Get(t.Context())
	if status.Code(err) == codes.NotFound {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return snap.Data()
}

var mergeAll = gfs.MergeAll

// TestClientsLimit: four Ledgers with clients of their own (four function
// instances, whose in-process locks know nothing of each other) racing
// for slots and request keys never exceed the limit: every write that
// takes a slot reads and writes the entitlement's slot list in its
// transaction, and Firestore serializes them.
func TestClientsLimit(t *testing.T) {
	t.Parallel()
	prefix := newPrefix()
	var ls []*firestore.Ledger
	for range 4 {
		ls = append(ls, open(t, firestore.Config{Prefix: prefix}))
	}
	const n = 20

	errs := ledgertest.Race(n, func(i int) error {
		return ls[i%len(ls)].Create(t.Context(), ledgertest.SlotGrant(fmt.Sprint("g-create-", i), "ent-create", grant.Activating, 1))
	})
	if ok, refused := ledgertest.Tally(t, errs, grant.ErrLimit); ok != 1 || refused != n-1 {
		t.Errorf("Creates: %d succeeded, %d refused with ErrLimit; want 1, %d", ok, refused, n-1)
	}

	for i := range n {
		if err := ls[0].Create(t.Context(), ledgertest.SlotGrant(fmt.Sprint("g-approve-", i), "ent-approve", grant.ApprovalAwaited, 0)); err != nil {
			t.Fatal(err)
		}
	}
	errs = ledgertest.Race(n, func(i int) error {
		_, err := ls[i%len(ls)].Update(t.Context(), fmt.Sprint("g-approve-", i), ledgertest.MoveTo(grant.Activating, 5))
		return err
	})
	if ok, refused := ledgertest.Tally(t, errs, grant.ErrLimit); ok != 5 || refused != n-5 {
		t.Errorf("approvals: %d succeeded, %d refused with ErrLimit; want 5, %d", ok, refused, n-5)
	}
	if got := ledgertest.Holders(t, ls[1], "ent-approve"); len(got) != 5 {
		t.Errorf("holding a slot: %v, want 5", got)
	}

	errs = ledgertest.Race(n, func(i int) error {
		g := ledgertest.SlotGrant(fmt.Sprint("g-keyed-", i), "ent-keyed", grant.ApprovalAwaited, 0)
		g.RequestKey = "envelope:bot@example.com/once"
		return ls[i%len(ls)].Create(t.Context(), g)
	})
	if ok, refused := ledgertest.Tally(t, errs, grant.ErrDuplicateRequest); ok != 1 || refused != n-1 {
		t.Errorf("Creates with one key: %d succeeded, %d refused with ErrDuplicateRequest; want 1, %d", ok, refused, n-1)
	}
}

// TestSlotsStaleEntry: a listed grant that no longer holds a slot — ended
// or deleted behind the ledger's back, or moved to another entitlement —
// does not block the entitlement: the write that needs its slot re-reads
// it and drops it from the list.
func TestSlotsStaleEntry(t *testing.T) {
	t.Parallel()
	prefix := newPrefix()
	l := open(t, firestore.Config{Prefix: prefix})
	grants := rawClient(t).Collection(prefix + firestore.GrantsCollection)
	for _, tt := range []struct {
		name  string
		spoil func(id string) error
	}{
		{"ended", func(id string) error {
			_, err := grants.Doc(id).Set(t.Context(), map[string]any{"state": string(grant.Ended)}, mergeAll)
			return err
		}},
		{"deleted", func(id string) error { _, err := grants.Doc(id).Delete(t.Context()); return err }},
		{"other entitlement", func(id string) error {
			_, err := grants.Doc(id).Set(t.Context(), map[string]any{"entitlement": "elsewhere"}, mergeAll)
			return err
		}},
	} {
		ent := "ent-" + tt.name
		if err := l.Create(t.Context(), ledgertest.SlotGrant("g-stale-"+tt.name, ent, grant.Active, 1)); err != nil {
			t.Fatal(err)
		}
		if err := tt.spoil("g-stale-" + tt.name); err != nil {
			t.Fatal(err)
		}
		if err := l.Create(t.Context(), ledgertest.SlotGrant("g-next-"+tt.name, ent, grant.Activating, 1)); err != nil {
			t.Errorf("%s: Create with a stale entry in the list: %v", tt.name, err)
		}
		if diff := cmp.Diff([]any{"g-next-" + tt.name}, slotsDoc(t, prefix, ent)["grants"]); diff != "" {
			t.Errorf("%s: slot list (-want +got):\n%s", tt.name, diff)
		}
	}
}

// TestSlotsSeeded: grants that hold a slot but are on no list (written
// before the ledger kept lists, or after an operator deleted the list)
// count: the first write that needs the list seeds it from a query.
func TestSlotsSeeded(t *testing.T) {
	t.Parallel()
	prefix := newPrefix()
	l := open(t, firestore.Config{Prefix: prefix})
	for _, id := range []string{"g-old-1", "g-old-2"} {
		if err := l.Create(t.Context(), ledgertest.SlotGrant(id, "prod", grant.Active, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Create(t.Context(), ledgertest.SlotGrant("g-ended", "prod", grant.Ended, 0)); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("prod"))
	if _, err := rawClient(t).Collection(prefix + firestore.SlotsCollection).Doc(hex.EncodeToString(sum[:])).Delete(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := l.Create(t.Context(), ledgertest.SlotGrant("g-new", "prod", grant.Activating, 2)); !errors.Is(err, grant.ErrLimit) {
		t.Errorf("Create under a limit of 2 with 2 unlisted active grants: %v, want ErrLimit", err)
	}
	if err := l.Create(t.Context(), ledgertest.SlotGrant("g-new", "prod", grant.Activating, 3)); err != nil {
		t.Errorf("Create under a limit of 3: %v", err)
	}
	want := map[string]any{"entitlement": "prod", "grants": []any{"g-old-2", "g-old-1", "g-new"}}
	if diff := cmp.Diff(want, slotsDoc(t, prefix, "prod")); diff != "" {
		t.Errorf("seeded slot list (-want +got):\n%s", diff)
	}
	if _, err := l.Update(t.Context(), "g-old-1", ledgertest.MoveTo(grant.Ended, -1)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]any{"g-old-2", "g-new"}, slotsDoc(t, prefix, "prod")["grants"]); diff != "" {
		t.Errorf("slot list after a grant ended (-want +got):\n%s", diff)
	}
}
