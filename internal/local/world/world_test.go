package world

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/jitpipeline/jit/internal/groups"
)

// problems splits a joined Parse error into its lines.
func problems(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

const minimal = `organization: {id: "100000000001", domain: example.com}
`

func TestParseReportsEveryProblemWithItsLine(t *testing.T) {
	t.Parallel()
	src := `organization: {id: "abc", domain: example.com, colour: red}
folders:
  - {id: "2", parent: organizations/1}
  - {id: "3", parent: folders/4}
  - {id: "4", parent: folders/3}
projects:
  - {id: Bad_ID, number: 5, parent: folders/9}
  - {id: good-project, number: 5}
  - {id: other-project}
  - {id: zero-project, number: 0}
users:
  - {email: Alice@Example.com}
  - {email: alice@example.com}
  - {email: not-an-email}
groups:
  - email: sre@example.com
    members:
      - user:alice@example.com
      - user:bob@example.com
      - group:ghost@example.com
      - robot:x
      - group:sre@example.com
      - domain:example.com
      - user:ALICE@example.com
bindings:
  - {resource: projects/nope, role: viewer, members: []}
  - resource: projects/good-project
    role: roles/compute.viewer
    members: [domain:example.com, serviceAccount:me@gmail.com]
    condition: {title: t}
`
	want := []string{
		`line 1: unknown field organization.colour (want one of id, domain, name)`,
		`line 1: organization.id "abc" is not an organization number`,
		`line 3: folder 2: parent "organizations/1" is not the organization or a folder of this world`,
		`line 4: folders form a cycle: 3 -> 4 -> 3`,
		`line 7: project id "Bad_ID" is not a project ID (6 to 30 lowercase letters, digits or hyphens, starting with a letter)`,
		`line 7: project Bad_ID: parent "folders/9" is not the organization or a folder of this world`,
		`line 8: project good-project: number 5 already belongs to project Bad_ID`,
		`line 9: projects[2].number is required`,
		`line 10: projects[3]: project number 0 must be positive`,
		`line 13: user alice@example.com is already defined at line 12`,
		`line 14: user email "not-an-email" is not an email address`,
		`line 19: group sre@example.com: member user:bob@example.com is not a user of this world (declare it under users)`,
		`line 20: group sre@example.com: member group:ghost@example.com is not a group of this world (declare it under groups)`,
		`line 21: groups[0].members[3]: member "robot:x": unknown type "robot": want user, group, serviceAccount or domain`,
		`line 23: group sre@example.com: member domain:example.com: a domain cannot be a group member`,
		`line 24: groups[0].members[6]: duplicate member "user:alice@example.com"`,
		`line 26: bindings[0].members: a binding needs at least one member`,
		`line 26: binding resource "projects/nope" is not the organization, a folder or a project of this world`,
		`line 26: binding role "viewer" is not a role name (roles/…, projects/P/roles/… or organizations/N/roles/…)`,
		`line 29: bindings[1].members[1]: member "serviceAccount:me@gmail.com": not a service account email (…@….gserviceaccount.com)`,
		`line 30: bindings[1].condition.expression is required`,
	}
	_, err := Parse([]byte(src))
	if diff := cmp.Diff(want, problems(err)); diff != "" {
		t.Errorf("Parse problems mismatch (-want +got):\n%s", diff)
	}
}

func TestParseShapeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"empty", ``, []string{"the world file is empty"}},
		{"syntax", "organization: [\n", nil}, // a yaml.v3 message; only its presence is checked
		{"no organization", "folders: []\n", []string{"line 1: organization is required"}},
		{"top level is a list", "- a\n", []string{"line 1: the world file: want a mapping with fields organization, folders, projects, users, groups, bindings"}},
		{"unknown top-level field", minimal + "roles: []\n", []string{"line 2: unknown field roles (want one of organization, folders, projects, users, groups, bindings)"}},
		{"duplicate field", minimal + "users: []\nusers: []\n", []string{"line 3: duplicate field users"}},
		{"list expected", minimal + "users: alice\n", []string{"line 2: users: want a list"}},
		{"string expected", minimal + "users:\n  - email: [a]\n", []string{"line 3: users[0].email: want a string"}},
		{"missing email", minimal + "users:\n  - name: Alice\n", []string{"line 3: users[0].email is required"}},
		{"empty email", minimal + "users:\n  - email: \"\"\n", []string{"line 3: users[0].email must not be empty"}},
		{"number not an integer", minimal + "projects:\n  - {id: demo-prod, number: many}\n", []string{`line 3: projects[0].number: want an integer, got "many"`}},
		{"group has a user's email", minimal + "users: [{email: a@example.com}]\ngroups: [{email: A@example.com}]\n", []string{"line 3: group a@example.com has the email of the user defined at line 2"}},
		{"duplicate group", minimal + "groups:\n  - {email: g@example.com}\n  - {email: g@example.com}\n", []string{"line 4: group g@example.com is already defined at line 3"}},
		{"duplicate folder", minimal + "folders:\n  - {id: \"2\", parent: organizations/100000000001}\n  - {id: \"2\", parent: organizations/100000000001}\n", []string{"line 4: folder 2 is already defined at line 3"}},
		{"duplicate project", minimal + "projects:\n  - {id: demo-prod, number: 1}\n  - {id: demo-prod, number: 2}\n", []string{"line 4: project demo-prod is already defined at line 3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, err := Parse([]byte(tc.src))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", w)
			}
			if tc.want == nil {
				return
			}
			if diff := cmp.Diff(tc.want, problems(err)); diff != "" {
				t.Errorf("Parse problems mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseNormalizes(t *testing.T) {
	t.Parallel()
	src := `organization: {id: 100000000001, domain: Example.COM, name: Example}
folders:
  - {id: 200000000002, name: child, parent: folders/200000000001}   # before its parent
  - {id: 200000000001, name: parent, parent: organizations/100000000001}
projects:
  - {id: demo-prod, number: "300000000001", parent: folders/200000000002}
  - {id: standalone, number: 300000000002}
users:
  - &alice {email: Alice@Example.com, name: Alice}
groups:
  - {email: SRE@example.com, members: [user:ALICE@example.com, serviceAccount:Bot@p-1234.iam.gserviceaccount.com]}
bindings:
  - resource: projects/demo-prod
    role: roles/compute.viewer
    members: [group:sre@EXAMPLE.com, domain:Example.com]
    condition:
      title: Eligible for JIT access
      expression: has({}.jitAccessConstraint)
`
	w, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := &World{
		Organization: Organization{ID: "100000000001", Domain: "example.com", Name: "Example"},
		Folders: []Folder{
			{ID: "200000000002", Name: "child", Parent: "folders/200000000001"},
			{ID: "200000000001", Name: "parent", Parent: "organizations/100000000001"},
		},
		Projects: []Project{
			{ID: "demo-prod", Number: 300000000001, Parent: "folders/200000000002"},
			{ID: "standalone", Number: 300000000002},
		},
		Users:  []User{{Email: "alice@example.com", Name: "Alice"}},
		Groups: []Group{{Email: "sre@example.com", Members: []string{"user:alice@example.com", "serviceAccount:bot@p-1234.iam.gserviceaccount.com"}}},
		Bindings: []Binding{{
			Resource:  "projects/demo-prod",
			Role:      "roles/compute.viewer",
			Members:   []string{"group:sre@example.com", "domain:example.com"},
			Condition: &Condition{Title: "Eligible for JIT access", Expression: "has({}.jitAccessConstraint)"},
		}},
	}
	opts := cmp.Options{
		cmpopts.IgnoreUnexported(World{}, Organization{}, Folder{}, Project{}, User{}, Group{}, Binding{}),
	}
	if diff := cmp.Diff(want, w, opts); diff != "" {
		t.Errorf("Parse mismatch (-want +got):\n%s", diff)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "world.yaml")
	if err := os.WriteFile(good, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if w.Organization.Domain != "example.com" {
		t.Errorf("domain %q, want example.com", w.Organization.Domain)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(minimal+"colour: red\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "line 2: unknown field colour") {
		t.Errorf("Load(bad) error %v; want it to name the file and the line", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) error %v; want os.ErrNotExist", err)
	}
}

func TestIsInternal(t *testing.T) {
	t.Parallel()
	// docs/jit-access.md §3.3: class:internalUsers are the users of the
	// organization's Cloud Identity account, class:externalUsers the others.
	w, err := Parse([]byte(minimal + `users:
  - {email: alice@example.com}
  - {email: xavier@partner.example.org}
  - {email: gmail-style@example.com, hostedDomain: none}
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		email string
		want  bool
	}{
		{"alice@example.com", true},
		{"Alice@EXAMPLE.com", true},
		{"xavier@partner.example.org", false},
		{"eve@sub.example.com", false},
		{"eve@example.com", false},         // in the domain, but no account of it
		{"gmail-style@example.com", false}, // declared without a hosted domain
		{"eve@example.com.evil.org", false},
		{"example.com", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := w.IsInternal(tc.email); got != tc.want {
			t.Errorf("IsInternal(%q) = %v, want %v", tc.email, got, tc.want)
		}
	}
}

// nestedWorld has nesting three deep, a cycle and a service account.
const nestedWorld = minimal + `users:
  - {email: alice@example.com}
  - {email: bob@example.com}
  - {email: carol@example.com}
  - {email: dave@example.com}
groups:
  - {email: all@example.com, members: [group:eng@example.com]}
  - {email: eng@example.com, members: [group:sre@example.com, user:dave@example.com]}
  - {email: sre@example.com, members: [user:alice@example.com, group:oncall@example.com]}
  - {email: oncall@example.com, members: [user:Bob@example.com, serviceAccount:bot@p-1234.iam.gserviceaccount.com]}
  - {email: ring-a@example.com, members: [user:carol@example.com, group:ring-b@example.com]}
  - {email: ring-b@example.com, members: [group:ring-a@example.com]}
  - {email: empty@example.com}
`

func TestResolver(t *testing.T) {
	t.Parallel()
	w, err := Parse([]byte(nestedWorld))
	if err != nil {
		t.Fatal(err)
	}
	r := w.Resolver()
	ctx := t.Context()

	groupsOf := []struct {
		email string
		want  []string
	}{
		{"bob@example.com", []string{"all@example.com", "eng@example.com", "oncall@example.com", "sre@example.com"}},
		{"BOB@Example.com", []string{"all@example.com", "eng@example.com", "oncall@example.com", "sre@example.com"}},
		{"alice@example.com", []string{"all@example.com", "eng@example.com", "sre@example.com"}},
		{"dave@example.com", []string{"all@example.com", "eng@example.com"}},
		{"bot@p-1234.iam.gserviceaccount.com", []string{"all@example.com", "eng@example.com", "oncall@example.com", "sre@example.com"}},
		{"carol@example.com", []string{"ring-a@example.com", "ring-b@example.com"}}, // through the cycle
		// A group's own address is no account: signing in with it gives
		// nobody the memberships of the group (user: and group: principals
		// are different identities).
		{"ring-a@example.com", []string{}},
		{"sre@example.com", []string{}},
		{"nobody@example.com", []string{}},
	}
	for _, tc := range groupsOf {
		got, err := r.GroupsOf(ctx, tc.email)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("GroupsOf(%q) mismatch (-want +got):\n%s", tc.email, diff)
		}
	}

	membersOf := []struct {
		group string
		want  []string
	}{
		{"all@example.com", []string{"alice@example.com", "bob@example.com", "dave@example.com"}}, // no service account
		{"SRE@example.com", []string{"alice@example.com", "bob@example.com"}},
		{"ring-b@example.com", []string{"carol@example.com"}},
		{"empty@example.com", []string{}},
	}
	for _, tc := range membersOf {
		got, err := r.MembersOf(ctx, tc.group)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("MembersOf(%q) mismatch (-want +got):\n%s", tc.group, diff)
		}
	}
	if _, err := r.MembersOf(ctx, "ghost@example.com"); !errors.Is(err, groups.ErrNotFound) {
		t.Errorf("MembersOf(unknown) error %v, want groups.ErrNotFound", err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.GroupsOf(cancelled, "bob@example.com"); !errors.Is(err, context.Canceled) {
		t.Errorf("GroupsOf(cancelled) error %v, want context.Canceled", err)
	}
}

func TestDirectMembers(t *testing.T) {
	t.Parallel()
	w, err := Parse([]byte(nestedWorld))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		group string
		want  []string
	}{
		{"Oncall@example.com", []string{"user:bob@example.com", "serviceAccount:bot@p-1234.iam.gserviceaccount.com"}},
		{"eng@example.com", []string{"group:sre@example.com", "user:dave@example.com"}},
		{"ghost@example.com", nil},
	}
	for _, tc := range tests {
		got, err := w.DirectMembers(t.Context(), tc.group)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("DirectMembers(%q) mismatch (-want +got):\n%s", tc.group, diff)
		}
	}
}
