package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A clean document; each lint case changes one line of it.
const base = `schemaVersion: 1
environment:
  name: prod
  systems:
    - name: sys
      groups:
        - name: grp
          access:
            - principal: user:ann@example.com
              allow: JOIN
          constraints:
            join:
              - type: expiry
                min: PT1H
                max: PT8H
          privileges:
            iam:
              - resource: projects/demo-project
                role: roles/viewer
`

// The reference documents lint clean: the seed's policy and the schema of
// docs/jit-access.md §3.2 with every field filled in.
func TestReferenceDocumentsLintClean(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) < 2 {
		t.Fatalf("testdata: %v %v", files, err)
	}
	files = append(files, "") // the base document above
	for _, f := range files {
		data := []byte(base)
		if f != "" {
			if data, err = os.ReadFile(f); err != nil {
				t.Fatal(err)
			}
		}
		pol, issues := Parse(data)
		if len(issues) > 0 {
			t.Errorf("%s: unexpected issues:\n%v", f, issues)
			continue
		}
		if len(pol.Groups()) == 0 {
			t.Errorf("%s: no groups", f)
		}
	}
}

func TestSeedPolicyContent(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/seed-002.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pol, issues := Parse(data)
	if issues != nil {
		t.Fatal(issues)
	}
	g, ok := pol.Group("PROD.servers.prod-server-admins")
	if !ok {
		t.Fatalf("groups: %v", pol.Groups())
	}
	want := []Privilege{
		{Resource: "projects/sample-project-1", Role: "roles/compute.osAdminLogin"},
		{Resource: "projects/sample-project-1", Role: "roles/iap.tunnelResourceAccessor"},
		{Resource: "projects/sample-project-1", Role: "roles/compute.instanceAdmin.v1"},
		{Resource: "projects/sample-project-2", Role: "roles/iap.tunnelResourceAccessor"},
		{Resource: "projects/sample-project-2", Role: "roles/compute.instanceAdmin.v1"},
	}
	if diff := cmp.Diff(want, g.Privileges); diff != "" {
		t.Errorf("privileges (-want +got):\n%s", diff)
	}
	if exp, _ := g.Expiry(); exp.Min.Hours() != 1 || exp.Max.Hours() != 24 {
		t.Errorf("expiry = %+v", exp)
	}
}

// Each code comes from a document with exactly that one problem, reported
// at the line of the offending node.
func TestLintCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code     Code
		old, new string
		line     int
	}{
		{FileInvalidSyntax, "  name: prod\n", "  name: prod\n   bad indentation: [\n", 4},
		{FileInvalidSyntax, "          access:\n            - principal: user:ann@example.com\n              allow: JOIN\n", "          access: everyone\n", 8},
		{FileUnknownProperty, "        - name: grp\n", "        - name: grp\n          colour: red\n", 8},
		{FileInvalidVersion, "schemaVersion: 1\n", "schemaVersion: 2\n", 1},
		{FileInvalidVersion, "schemaVersion: 1\n", "", 1},
		{EnvironmentMissing, base[strings.Index(base, "environment:"):], "", 1},
		{EnvironmentInvalid, "  name: prod\n", "  name: prod_1!\n", 3},
		{SystemInvalid, "    - name: sys\n", "    - name: sys.tem\n", 5},
		{SystemInvalid, "    - name: sys\n", "    - description: no name\n", 5},
		{GroupInvalid, "        - name: grp\n", "        - name: a-group-name-that-is-far-too-long\n", 7},
		{ACLInvalidPrincipal, "user:ann@example.com", "serviceAccount:robot@p.iam.gserviceaccount.com", 9},
		{ACLInvalidPrincipal, "user:ann@example.com", "class:everyone", 9},
		// Look-alikes of ann's address are not canonical: refused, never
		// trimmed or folded into hers.
		{ACLInvalidPrincipal, "user:ann@example.com", `"user:ann@example.com\u00a0"`, 9},
		{ACLInvalidPrincipal, "user:ann@example.com", `"user:ann@example.com\u3000"`, 9},
		{ACLInvalidPrincipal, "user:ann@example.com", `"user:ann@example.com\u0085"`, 9},
		{ACLInvalidPrincipal, "user:ann@example.com", `"user:\u0130ann@example.com"`, 9},
		{ACLInvalidPrincipal, "user:ann@example.com", `"user:ann\u200b@example.com"`, 9},
		{ACLInvalidPrincipal, "user:ann@example.com", `"group:ann\uff20example.com"`, 9},
		{ACLInvalidPrincipal, "user:ann@example.com", `"serviceAccount:robot@p.iam.gserviceaccount.com\u00a0"`, 9},
		{ACLInvalidPermission, "allow: JOIN", "allow: JOYN", 10},
		{ACLInvalidPermission, "allow: JOIN", "allow: JOIN\n              deny: VIEW", 11},
		{ConstraintInvalidType, "type: expiry", "type: expiri", 13},
		{ConstraintInvalidExpiry, "max: PT8H", "max: P1W", 15},
		{ConstraintInvalidExpiry, "min: PT1H", "min: PT9H", 14},
		// P364D + the default approval window (P1D) + the activation
		// allowance (P1D) exceed a workflow execution's year.
		{ConstraintInvalidExpiry, "max: PT8H", "max: P364D", 15},
		{ConstraintInvalidExpiry, "            join:\n", "            approve:\n", 13},
		{ConstraintInvalidExpression, "                max: PT8H\n", "                max: PT8H\n              - type: expression\n                name: ticket\n                expression: \"input.tikcet != ''\"\n                variables:\n                  - type: string\n                    name: ticket\n", 18},
		{ConstraintInvalidExpression, "                max: PT8H\n", "                max: PT8H\n              - type: expression\n                name: size\n                expression: \"1 + 1\"\n", 18},
		{ConstraintInvalidVariableDecl, "                max: PT8H\n", "                max: PT8H\n              - type: expression\n                name: ticket\n                expression: \"true\"\n                variables:\n                  - type: float\n                    name: ticket\n", 20},
		{ConstraintInvalidVariableDecl, "                max: PT8H\n", "                max: PT8H\n              - type: expression\n                name: ticket\n                expression: \"true\"\n                variables:\n                  - type: string\n                    name: bad-name\n", 20},
		{PrivilegeInvalidResourceID, "resource: projects/demo-project", "resource: projects/Demo_Project", 18},
		{PrivilegeInvalidResourceID, "resource: projects/demo-project", "resource: folders/eng", 18},
		{PrivilegeDuplicateResourceID, "              - resource: projects/demo-project\n", "              - project: demo-project\n                resource: projects/demo-project\n", 19},
		{PrivilegeInvalidRole, "role: roles/viewer", "role: viewer", 19},
		{ConstraintInvalidApprovals, "            join:\n", "            approve:\n              - type: approvals\n                required: 0\n            join:\n", 14},
		{ConstraintInvalidConcurrency, "                max: PT8H\n", "                max: PT8H\n              - type: concurrency\n                max: none\n", 17},
		{PrivilegeInvalidCondition, "                role: roles/viewer\n", "                role: roles/viewer\n                condition: \"request.time < 5\"\n", 20},
	} {
		doc := strings.Replace(base, tc.old, tc.new, 1)
		if doc == base {
			t.Fatalf("%s: replacement %q not found", tc.code, tc.old)
		}
		issues := Lint([]byte(doc))
		if len(issues) != 1 {
			t.Errorf("%s (%q): want exactly one issue, got %d:\n%v", tc.code, tc.new, len(issues), issues)
			continue
		}
		if got := issues[0]; got.Code != tc.code || got.Line != tc.line || got.Column < 1 || got.Message == "" || got.Scope == "" {
			t.Errorf("%s (%q): got %v, want line %d", tc.code, tc.new, got, tc.line)
		}
	}
}

// Every problem is reported at once, in file order.
func TestLintReportsEverything(t *testing.T) {
	t.Parallel()
	doc := strings.NewReplacer(
		"schemaVersion: 1", "schemaVersion: 3",
		"allow: JOIN", "allow: SUPERUSER",
		"role: roles/viewer", "role: viewer",
		"max: PT8H", "max: soon",
	).Replace(base)
	var got []Code
	for _, i := range Lint([]byte(doc)) {
		got = append(got, i.Code)
	}
	want := []Code{FileInvalidVersion, ACLInvalidPermission, ConstraintInvalidExpiry, PrivilegeInvalidRole}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("codes (-want +got):\n%s", diff)
	}
}

// The expiry maximum, the approval window and the activation allowance
// together must fit in one workflow execution (one year): the boundary
// is exact, and a long approval window counts.
func TestLintLifetime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		max, approvals string
		ok             bool
	}{
		{"P363D", "", true},
		{"P364D", "", false},
		{"P335D", "              - type: approvals\n                window: P29D\n", true},
		{"P336D", "              - type: approvals\n                window: P29D\n", false},
	} {
		doc := strings.Replace(base, "max: PT8H", "max: "+tc.max, 1)
		if tc.approvals != "" {
			doc = strings.Replace(doc, "            join:\n", "            approve:\n"+tc.approvals+"            join:\n", 1)
		}
		issues := Lint([]byte(doc))
		if got := len(issues) == 0; got != tc.ok {
			t.Errorf("max %s with %q: ok = %v, want %v: %v", tc.max, tc.approvals, got, tc.ok, issues)
		}
		if !tc.ok && len(issues) == 1 && (issues[0].Code != ConstraintInvalidExpiry || !strings.Contains(issues[0].Message, "one-year")) {
			t.Errorf("max %s: %v", tc.max, issues[0])
		}
	}
}
