package ledger_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/ledger"
)

// TestFormatTimeSortsAsTime: the stored time strings are compared as
// strings by SQLite and Firestore range filters and orderings, so their
// order must be the times' order, trailing zeros of the fraction included.
func TestFormatTimeSortsAsTime(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	times := []time.Time{
		base, base.Add(500 * time.Millisecond), base.Add(time.Nanosecond), base.Add(time.Second),
		base.Add(-time.Nanosecond), base.Add(999999999), base.In(time.FixedZone("", 14*3600)).Add(time.Microsecond),
		time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(9999, 1, 1, 0, 0, 0, 1, time.UTC),
	}
	for _, a := range times {
		for _, b := range times {
			fa, fb := ledger.FormatTime(a), ledger.FormatTime(b)
			if (fa < fb) != a.Before(b) {
				t.Errorf("FormatTime(%v) = %q, FormatTime(%v) = %q: string order differs from time order", a, fa, b, fb)
			}
		}
		back, err := ledger.ParseTime(ledger.FormatTime(a))
		if err != nil || !back.Equal(a) || back.Location() != time.UTC {
			t.Errorf("ParseTime(FormatTime(%v)) = %v, %v", a, back, err)
		}
	}
	if s := ledger.FormatTime(time.Time{}); s != "" {
		t.Errorf("FormatTime(zero) = %q, want empty", s)
	}
	if z, err := ledger.ParseTime(""); err != nil || !z.IsZero() {
		t.Errorf(`ParseTime("") = %v, %v; want the zero time`, z, err)
	}
}

// TestCheckID: Firestore's document ID rules ("Must be valid UTF-8
// characters; at most 1,500 bytes; cannot contain a forward slash; cannot
// solely consist of a single period or double periods; cannot match the
// regular expression __.*__"; https://firebase.google.com/docs/firestore/quotas#collections_documents_and_fields).
func TestCheckID(t *testing.T) {
	t.Parallel()
	for _, id := range []string{grant.NewID(), "g-1", "a.b", "_x_", "__x", strings.Repeat("a", 1500), "ünï"} {
		if err := ledger.CheckID(id); err != nil {
			t.Errorf("CheckID(%q): %v", id, err)
		}
	}
	for _, id := range []string{"", "a/b", ".", "..", "__x__", "____", strings.Repeat("a", 1501), "\xff"} {
		if err := ledger.CheckID(id); !errors.Is(err, ledger.ErrInvalidID) {
			t.Errorf("CheckID(%q) = %v, want ErrInvalidID", id, err)
		}
	}
}

// TestLess: newest CreateTime first, then ID descending (Firestore's
// implicit __name__ order in the direction of the last ordering).
func TestLess(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	gs := []*grant.Grant{
		{ID: "a", CreateTime: at}, {ID: "b", CreateTime: at.Add(time.Nanosecond)}, {ID: "c", CreateTime: at}, {ID: "z"},
	}
	slices.SortFunc(gs, func(x, y *grant.Grant) int {
		if ledger.Less(x, y) {
			return -1
		}
		if ledger.Less(y, x) {
			return 1
		}
		return 0
	})
	var got []string
	for _, g := range gs {
		got = append(got, g.ID)
	}
	if want := []string{"b", "c", "a", "z"}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}

// TestSlotStates: the states queries use are exactly those that
// grant.State.HoldsSlot names.
func TestSlotStates(t *testing.T) {
	t.Parallel()
	all := []grant.State{
		grant.ApprovalAwaited, grant.Scheduled, grant.Activating, grant.Active, grant.ActivationFailed, grant.Denied,
		grant.Expired, grant.Revoking, grant.Revoked, grant.Ended, grant.Withdrawing, grant.Withdrawn,
	}
	var want []grant.State
	for _, s := range all {
		if s.HoldsSlot() {
			want = append(want, s)
		}
	}
	if got := ledger.SlotStates(); !slices.Equal(got, want) {
		t.Errorf("SlotStates() = %v, want %v", got, want)
	}
}

// TestTakesSlot: only a move from a state without a slot into one with a
// slot is checked against the limit.
func TestTakesSlot(t *testing.T) {
	t.Parallel()
	g := func(s grant.State) *grant.Grant { return &grant.Grant{State: s} }
	tests := []struct {
		name          string
		before, after *grant.Grant
		want          bool
	}{
		{"create active", nil, g(grant.Active), true},
		{"create activating", nil, g(grant.Activating), true},
		{"create awaiting", nil, g(grant.ApprovalAwaited), false},
		{"approve", g(grant.ApprovalAwaited), g(grant.Activating), true},
		{"scheduled start", g(grant.Scheduled), g(grant.Activating), true},
		{"activated", g(grant.Activating), g(grant.Active), false},
		{"withdraw", g(grant.Active), g(grant.Withdrawing), false},
		{"end", g(grant.Active), g(grant.Ended), false},
		{"other edit", g(grant.ApprovalAwaited), g(grant.ApprovalAwaited), false},
	}
	for _, tt := range tests {
		if got := ledger.TakesSlot(tt.before, tt.after); got != tt.want {
			t.Errorf("%s: TakesSlot = %v, want %v", tt.name, got, tt.want)
		}
	}
}
