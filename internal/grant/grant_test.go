package grant

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestEveryBindingStateIsRevocable: a grant in any state that may hold a
// binding can be withdrawn by its requester and revoked by an
// administrator — by a transition, or, when its removal is under way
// already, by driving that removal again (issue 8: ACTIVATION_FAILED kept
// roles/compute.admin, and withdraw and revoke both answered 409).
//
// The states that may hold one are those that hold a slot, and
// ACTIVATION_FAILED before its removal is verified. ENDED, REVOKED and
// WITHDRAWN (after WITHDRAWING) are entered only once the removal is
// verified, DENIED, EXPIRED and WITHDRAWN (before approval) never start.
func TestEveryBindingStateIsRevocable(t *testing.T) {
	t.Parallel()
	var holding []State
	for s := range transitions {
		if s.HoldsSlot() || s == ActivationFailed {
			holding = append(holding, s)
		}
	}
	slices.Sort(holding)
	want := []State{Activating, ActivationFailed, Active, Revoking, Withdrawing}
	if diff := cmp.Diff(want, holding); diff != "" {
		t.Fatalf("states that may hold a binding (-want +got):\n%s", diff)
	}
	for _, from := range holding {
		if g := (&Grant{State: from, StartTime: time.Unix(1, 0)}); !g.MayHoldAccess() {
			t.Errorf("%s: MayHoldAccess = false", from)
		}
		for _, to := range []State{Withdrawing, Revoking} {
			removing := from == Withdrawing || from == Revoking
			if !removing && !CanMove(from, to) {
				t.Errorf("%s may hold a binding but cannot move to %s", from, to)
			}
		}
	}
	if g := (&Grant{State: ActivationFailed, StartTime: time.Unix(1, 0), RevocationVerified: true}); g.MayHoldAccess() {
		t.Error("a failed activation whose removal is verified still may hold access")
	}
	if g := (&Grant{State: ActivationFailed}); g.MayHoldAccess() {
		t.Error("a failed activation that never started may hold access")
	}
}
