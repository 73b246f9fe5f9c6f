package world

import (
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/type/expr"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/jitpipeline/jit/internal/local/gcp/localiam"
)

func newIAM(t *testing.T, dir string, w *World) *localiam.Server {
	t.Helper()
	cfg := localiam.Config{Dir: dir}
	if w != nil {
		cfg.Members = w.DirectMembers
	}
	s, err := localiam.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// seedWorld has folders listed child first, bindings on three levels and a
// conditional binding.
const seedWorld = `organization: {id: "100000000001", domain: example.com}
folders:
  - {id: "200000000002", parent: folders/200000000001}
  - {id: "200000000001", parent: organizations/100000000001}
projects:
  - {id: demo-prod, number: 300000000001, parent: folders/200000000002}
users:
  - {email: alice@example.com}
groups:
  - {email: sre@example.com, members: [user:alice@example.com]}
bindings:
  - {resource: organizations/100000000001, role: roles/browser, members: [domain:example.com]}
  - {resource: folders/200000000002, role: roles/viewer, members: [group:sre@example.com]}
  - resource: projects/demo-prod
    role: roles/compute.viewer
    members: [group:sre@example.com]
    condition:
      title: Eligible for JIT access
      expression: has({}.jitAccessConstraint)
  - {resource: projects/demo-prod, role: roles/logging.viewer, members: [user:alice@example.com]}
`

func TestSeedCreatesHierarchyAndBindings(t *testing.T) {
	t.Parallel()
	w, err := Parse([]byte(seedWorld))
	if err != nil {
		t.Fatal(err)
	}
	s := newIAM(t, "", w)
	if err := w.Seed(s); err != nil {
		t.Fatal(err)
	}
	// docs/google-cloud.md §1: a policy with a conditional binding is stored as
	// version 3; conditions survive intact.
	want := &iampb.Policy{
		Version: 3,
		Bindings: []*iampb.Binding{
			{Role: "roles/compute.viewer", Members: []string{"group:sre@example.com"}, Condition: &expr.Expr{Title: "Eligible for JIT access", Expression: "has({}.jitAccessConstraint)"}},
			{Role: "roles/logging.viewer", Members: []string{"user:alice@example.com"}},
		},
	}
	if diff := cmp.Diff(want, s.Policy("projects/demo-prod"), protocmp.Transform(), protocmp.IgnoreFields(&iampb.Policy{}, "etag")); diff != "" {
		t.Errorf("projects/demo-prod policy mismatch (-want +got):\n%s", diff)
	}
	// The hierarchy is real: a folder binding two levels up applies to the
	// project, through the group.
	ok, err := s.HasRole(t.Context(), "user:alice@example.com", "roles/viewer", "projects/demo-prod", time.Now())
	if err != nil || !ok {
		t.Errorf("HasRole(alice, roles/viewer, demo-prod) = %v, %v; want true through folders/200000000002 and group sre", ok, err)
	}
	ok, err = s.HasRole(t.Context(), "user:alice@example.com", "roles/browser", "projects/demo-prod", time.Now())
	if err != nil || !ok {
		t.Errorf("HasRole(alice, roles/browser, demo-prod) = %v, %v; want true through the organization's domain binding", ok, err)
	}
}

func TestSeedIsIdempotentAndNeverOverwrites(t *testing.T) {
	t.Parallel()
	w, err := Parse([]byte(seedWorld))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := newIAM(t, dir, w)
	if err := w.Seed(s); err != nil {
		t.Fatal(err)
	}
	first := s.Policy("projects/demo-prod")

	// Seeding again writes nothing: the etag is unchanged.
	if err := w.Seed(s); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, s.Policy("projects/demo-prod"), protocmp.Transform()); diff != "" {
		t.Errorf("second Seed changed the policy (-before +after):\n%s", diff)
	}

	// The pipeline grants something and removes an initial binding, with a
	// version-3 read-modify-write (docs/google-cloud.md §1).
	changed := &iampb.Policy{
		Version: 3,
		Etag:    first.GetEtag(),
		Bindings: []*iampb.Binding{
			first.GetBindings()[0],
			{Role: "roles/compute.admin", Members: []string{"user:alice@example.com"}, Condition: &expr.Expr{
				Title:      "JIT access activation",
				Expression: `(request.time >= timestamp("2030-01-01T00:00:00Z") && request.time < timestamp("2030-01-01T01:00:00Z"))`,
			}},
		},
	}
	if _, err := s.SetPolicy("projects/demo-prod", changed); err != nil {
		t.Fatal(err)
	}
	granted := s.Policy("projects/demo-prod")

	// A restart: a new server on the same data directory, seeded again. The
	// first keeps its policies in memory for the comparisons below.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	restarted := newIAM(t, dir, w)
	if err := w.Seed(restarted); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(granted, restarted.Policy("projects/demo-prod"), protocmp.Transform()); diff != "" {
		t.Errorf("Seed after restart overwrote the pipeline's changes (-want +got):\n%s", diff)
	}
	for _, res := range []string{"organizations/100000000001", "folders/200000000001", "folders/200000000002"} {
		if diff := cmp.Diff(s.Policy(res), restarted.Policy(res), protocmp.Transform()); diff != "" {
			t.Errorf("%s changed across restart and re-seed (-before +after):\n%s", res, diff)
		}
	}
}

func TestSeedReportsEveryFailure(t *testing.T) {
	t.Parallel()
	// The local IAM type-checks conditions with cel-go and refuses a
	// condition on a basic role (docs/google-cloud.md §1, "Where conditions cannot be
	// used"); Seed names each resource and line and still seeds the rest.
	src := `organization: {id: "100000000001", domain: example.com}
projects:
  - {id: demo-prod, number: 300000000001, parent: organizations/100000000001}
  - {id: demo-dev, number: 300000000002, parent: organizations/100000000001}
  - {id: demo-ok, number: 300000000003, parent: organizations/100000000001}
users:
  - {email: alice@example.com}
bindings:
  - resource: projects/demo-prod
    role: roles/compute.viewer
    members: [user:alice@example.com]
    condition: {title: typo, expression: "request.time < 42"}
  - resource: projects/demo-dev
    role: roles/viewer
    members: [user:alice@example.com]
    condition: {title: basic, expression: "request.time < timestamp('2030-01-01T00:00:00Z')"}
  - {resource: projects/demo-ok, role: roles/viewer, members: [user:alice@example.com]}
`
	w, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	s := newIAM(t, "", w)
	err = w.Seed(s)
	if err == nil {
		t.Fatal("Seed succeeded; want errors for demo-prod and demo-dev")
	}
	for _, want := range []string{
		"projects/demo-prod (line 9)", "found no matching overload", // the CEL type-check
		"projects/demo-dev (line 13)", "basic role roles/viewer",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Seed error %q does not mention %q", err, want)
		}
	}
	if n := len(s.Policy("projects/demo-ok").GetBindings()); n != 1 {
		t.Errorf("projects/demo-ok has %d bindings, want 1: other resources must still be seeded", n)
	}
}

func TestSeedConflictingHierarchy(t *testing.T) {
	t.Parallel()
	// A world that moved a project to another parent cannot be applied over
	// the old state: localiam refuses a different parent, and Seed says so.
	w, err := Parse([]byte(seedWorld))
	if err != nil {
		t.Fatal(err)
	}
	s := newIAM(t, "", w)
	if err := s.AddOrganization("100000000001"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddProject("demo-prod", 300000000001, "organizations/100000000001"); err != nil {
		t.Fatal(err)
	}
	err = w.Seed(s)
	if err == nil || !strings.Contains(err.Error(), "failed to seed project demo-prod (line 6)") {
		t.Errorf("Seed error %v; want it to name project demo-prod and its line", err)
	}
}
