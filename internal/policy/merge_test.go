package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Merge decides on the entitlements of every environment and leaves the
// primary policy as it was.
func TestMerge(t *testing.T) {
	t.Parallel()
	primary := mustParse(t, doc([]string{"group:admins@example.com allow RECONCILE"}, nil, []string{"user:alice@example.com allow JOIN, APPROVE_SELF"}, ""))
	other := &Environment{Classic: &Classic{MaxRoles: 3}}
	other.Name = "classic"
	other.ACL = []ACE{{Principal: Principal{Type: GroupPrincipal, Value: "ops@example.com"}, Mask: Reconcile}}
	sys := &System{}
	sys.Name = "p1"
	g := &Group{Privileges: []Privilege{{Resource: "projects/p1", Role: "roles/viewer"}}}
	g.Name = "viewer"
	g.ACL = []ACE{{Principal: Principal{Type: UserPrincipal, Value: "bob@example.com"}, Mask: Join | ApproveSelf}}
	sys.Groups = []*Group{g}
	other.Systems = []*System{sys}
	if _, err := Build(other); err != nil {
		t.Fatal(err)
	}
	merged, err := Merge(primary, other)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, g := range merged.Groups() {
		ids = append(ids, g.ID())
	}
	if diff := cmp.Diff([]string{"classic.p1.viewer", primary.Groups()[0].ID()}, ids); diff != "" {
		t.Errorf("merged groups (-want +got):\n%s", diff)
	}
	if len(primary.Groups()) != 1 || merged.Environment != primary.Environment || string(merged.Source) != string(primary.Source) {
		t.Error("Merge changed the primary policy or lost its document")
	}
	bob := NewSubject("bob@example.com", nil, true)
	if got := merged.Evaluate(bob); len(got) != 1 || !got[0].SelfApprove || got[0].Group.Classic().MaxRoles != 3 {
		t.Errorf("bob's entitlements %+v", got)
	}
	admin := NewSubject("root@example.com", []string{"admins@example.com"}, true)
	ops := NewSubject("ops@example.com", []string{"ops@example.com"}, true)
	for _, tc := range []struct {
		who         Subject
		entitlement string
		want        bool
	}{
		// The document's administrators administer every environment's
		// grants; another environment's only its own.
		{admin, "classic.p1.viewer", true},
		{admin, primary.Groups()[0].ID(), true},
		{ops, "classic.p1.viewer", true},
		{ops, primary.Groups()[0].ID(), false},
		{ops, "", false},
		{bob, "classic.p1.viewer", false},
	} {
		if got := merged.Reconciles(tc.who, tc.entitlement); got != tc.want {
			t.Errorf("Reconciles(%s, %q) = %v, want %v", tc.who.Email, tc.entitlement, got, tc.want)
		}
	}
	dup := &Environment{}
	dup.Name = strings.ToUpper(primary.Environment.Name)
	if _, err := Merge(primary, dup); err == nil || !strings.Contains(err.Error(), "appears twice") {
		t.Errorf("Merge of two environments of one name = %v, want refused", err)
	}
}
