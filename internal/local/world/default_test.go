package world

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultSeedsAndResolves(t *testing.T) {
	t.Parallel()
	w := Default()
	s := newIAM(t, t.TempDir(), w)
	if err := w.Seed(s); err != nil {
		t.Fatalf("Seed(Default()): %v", err)
	}

	// The demo's shape: 2 folders, 5 projects (demo-project is where the
	// demo policy grants), ~8 users with one external, and the classic
	// eligibility markers (docs/jit-access.md §1.1) on demo-prod, accepted by
	// the local IAM's CEL type-check.
	if len(w.Folders) != 2 || len(w.Projects) != 5 {
		t.Errorf("demo world has %d folders and %d projects, want 2 and 5", len(w.Folders), len(w.Projects))
	}
	var external []string
	for _, u := range w.Users {
		if !w.IsInternal(u.Email) {
			external = append(external, u.Email)
		}
	}
	if diff := cmp.Diff([]string{"xavier@partner.example.org"}, external); diff != "" {
		t.Errorf("external users mismatch (-want +got):\n%s", diff)
	}
	markers := map[string]string{}
	for _, b := range s.Policy("projects/demo-prod").GetBindings() {
		markers[b.GetRole()] = b.GetCondition().GetExpression()
	}
	wantMarkers := map[string]string{
		"roles/compute.viewer": "has({}.jitAccessConstraint)",
		"roles/compute.admin":  "has({}.multiPartyApprovalConstraint)",
		"roles/logging.viewer": "has({}.jitAccessConstraint)",
	}
	if diff := cmp.Diff(wantMarkers, markers); diff != "" {
		t.Errorf("demo-prod eligibility bindings mismatch (-want +got):\n%s", diff)
	}

	r := w.Resolver()
	ctx := t.Context()
	got, err := r.GroupsOf(ctx, "carol@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"developers@example.com", "oncall@example.com", "sre@example.com"}, got); diff != "" {
		t.Errorf("GroupsOf(carol) mismatch, want sre through nested oncall (-want +got):\n%s", diff)
	}
	got, err = r.MembersOf(ctx, "sre@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"alice@example.com", "bob@example.com", "carol@example.com"}, got); diff != "" {
		t.Errorf("MembersOf(sre) mismatch (-want +got):\n%s", diff)
	}
	for _, g := range []string{"managers@example.com", "security@example.com", "admins@example.com", "developers@example.com"} {
		if m, err := r.MembersOf(ctx, g); err != nil || len(m) == 0 {
			t.Errorf("MembersOf(%s) = %v, %v; want members", g, m, err)
		}
	}

	// The local IAM sees the same nesting: carol holds roles/viewer on
	// demo-staging only through oncall ⊂ sre.
	ok, err := s.HasRole(ctx, "user:carol@example.com", "roles/viewer", "projects/demo-staging", time.Now())
	if err != nil || !ok {
		t.Errorf("HasRole(carol, roles/viewer, demo-staging) = %v, %v; want true", ok, err)
	}
	// An eligibility marker grants nothing by itself.
	ok, err = s.HasRole(ctx, "user:alice@example.com", "roles/compute.viewer", "projects/demo-prod", time.Now())
	if err != nil || ok {
		t.Errorf("HasRole(alice, roles/compute.viewer, demo-prod) = %v, %v; want false (marker only)", ok, err)
	}
}

func TestDefaultReturnsIndependentCopies(t *testing.T) {
	t.Parallel()
	a := Default()
	a.Users[0].Email = "changed@example.com"
	if Default().Users[0].Email == "changed@example.com" {
		t.Error("Default shares state between calls")
	}
	src := DefaultYAML()
	src[0] = '!'
	if bytes.Equal(src, DefaultYAML()) {
		t.Error("DefaultYAML shares its buffer")
	}
	if _, err := Parse(DefaultYAML()); err != nil {
		t.Errorf("Parse(DefaultYAML()): %v", err)
	}
}
