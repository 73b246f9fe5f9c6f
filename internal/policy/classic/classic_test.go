package classic

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	resourcemanager "cloud.google.com/go/resourcemanager/apiv3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/type/expr"

	"github.com/jitpipeline/jit/internal/local/gcp/localiam"
	"github.com/jitpipeline/jit/internal/local/gcp/loopback"
	"github.com/jitpipeline/jit/internal/policy"
)

func binding(role, cond string, members ...string) *iampb.Binding {
	b := &iampb.Binding{Role: role, Members: members}
	if cond != "" {
		b.Condition = &expr.Expr{Title: "eligible", Expression: cond}
	}
	return b
}

// setup serves the local IAM with eligible bindings in the odd spellings
// JIT Access accepts (docs/jit-access.md §1.1, §1.2), and returns a config
// whose clients are the real Resource Manager clients.
func setup(t *testing.T) Config {
	t.Helper()
	srv, err := localiam.New(localiam.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []error{
		srv.AddOrganization("100000000001"),
		srv.AddFolder("200000000001", "organizations/100000000001"),
		srv.AddProject("demo-project", 300000000001, "folders/200000000001"),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	if _, err := srv.SetPolicy("projects/demo-project", &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{
		binding("roles/compute.viewer", "has({}.jitAccessConstraint)", "user:alice@example.com", "group:sre@example.com", "serviceAccount:robot@demo-project.iam.gserviceaccount.com"),
		binding("roles/compute.admin", "has( {}.MultiPartyApprovalConstraint )", "user:bob@example.com", "user:carol@example.com", "user:alice@example.com"),
		binding("roles/compute.admin", "\r\n\thas({}.JITACCESSCONSTRAINT)\t", "user:alice@example.com"),
		binding("roles/storage.admin", "has({}.jitAccessConstraint) || request.time > timestamp('2020-01-01T00:00:00Z')", "user:alice@example.com"),
		binding("roles/secretmanager.secretAccessor", "resource.name=='projects/demo-project/secrets/db'&&has({}.jitAccessConstraint)", "user:bob@example.com"),
		binding("roles/logging.viewer", "request.time < timestamp('2040-01-01T00:00:00Z')", "user:bob@example.com"),
		binding("roles/viewer", "", "user:bob@example.com"),
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.SetPolicy("folders/200000000001", &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{
		binding("roles/resourcemanager.folderViewer", "has({}.multiPartyApprovalConstraint)", "group:auditors@example.com"),
	}}); err != nil {
		t.Fatal(err)
	}
	g, err := loopback.ServeGRPC("", srv.Register)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	ctx := t.Context()
	projects, err := resourcemanager.NewProjectsClient(ctx, g.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	folders, err := resourcemanager.NewFoldersClient(ctx, g.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	orgs, err := resourcemanager.NewOrganizationsClient(ctx, g.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { projects.Close(); folders.Close(); orgs.Close() })
	return Config{
		Scope:    []string{"projects/demo-project", "folders/200000000001", "organizations/100000000001"},
		Projects: projects, Folders: folders, Organizations: orgs,
		JustificationPattern: `CASE-\d+`,
		Admins:               []string{"group:jit-admins@example.com"},
	}
}

func summary(p *policy.Policy, s policy.Subject) []string {
	var out []string
	for _, a := range p.Evaluate(s) {
		mode := "approval"
		if a.SelfApprove {
			mode = "self"
		}
		if !a.Join {
			mode = "view"
		}
		out = append(out, fmt.Sprintf("%s %s %v", a.Group.ID(), mode, a.Group.Privileges))
	}
	return out
}

func TestClassicEntitlements(t *testing.T) {
	t.Parallel()
	pol, err := Load(t.Context(), setup(t))
	if err != nil {
		t.Fatal(err)
	}
	alice := policy.NewSubject("alice@example.com", nil, true)
	bob := policy.NewSubject("bob@example.com", nil, true)
	sre := policy.NewSubject("dave@example.com", []string{"sre@example.com"}, true)
	auditor := policy.NewSubject("erin@example.com", []string{"auditors@example.com"}, true)
	for _, tc := range []struct {
		who  policy.Subject
		want []string
	}{
		// compute.admin is eligible both ways for Alice: it shows once, self-approved.
		// storage.admin's top-level || makes it not eligible.
		{alice, []string{
			"classic.projects-demo-project.compute-admin self [roles/compute.admin on projects/demo-project]",
			"classic.projects-demo-project.compute-viewer self [roles/compute.viewer on projects/demo-project]",
		}},
		// The resource condition is canonicalised and carried into the privilege.
		{bob, []string{
			"classic.projects-demo-project.compute-admin approval [roles/compute.admin on projects/demo-project]",
			`classic.projects-demo-project.secretmanager-secretaccessor-` + groupName("", `resource.name == "projects/demo-project/secrets/db"`)[1:] +
				` self [roles/secretmanager.secretAccessor on projects/demo-project if resource.name == "projects/demo-project/secrets/db"]`,
		}},
		{sre, []string{"classic.projects-demo-project.compute-viewer self [roles/compute.viewer on projects/demo-project]"}},
		// Folder-level eligibility is granted on the folder.
		{auditor, []string{"classic.folders-200000000001.resourcemanager-folderviewer approval [roles/resourcemanager.folderViewer on folders/200000000001]"}},
	} {
		if diff := cmp.Diff(tc.want, summary(pol, tc.who)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.who.Email, diff)
		}
	}

	// Peers holding the same MPA-eligible binding approve; never the requester.
	g, _ := pol.Group("classic.projects-demo-project.compute-admin")
	got := principals(g.Approvers("bob@example.com"))
	sort.Strings(got)
	if diff := cmp.Diff([]string{"user:alice@example.com", "user:carol@example.com"}, got); diff != "" {
		t.Errorf("approvers for bob (-want +got):\n%s", diff)
	}
	// An MPA-eligible group with a single member has no one to approve it.
	if _, err := pol.Join(policy.Request{Subject: auditor, Entitlement: "classic.folders-200000000001.resourcemanager-folderViewer", Duration: time.Hour, Inputs: map[string]any{"justification": "CASE-1"}}); err != nil {
		t.Errorf("auditor (group member; other group members approve): %v", err)
	}
}

func principals(ps []policy.Principal) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func TestClassicConstraints(t *testing.T) {
	t.Parallel()
	cfg := setup(t)
	cfg.MaxDuration = 90 * time.Minute
	pol, err := Load(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	alice := policy.NewSubject("alice@example.com", nil, true)
	id := "classic.projects-demo-project.compute-viewer"
	for _, tc := range []struct {
		d    time.Duration
		j    string
		want string
	}{
		{time.Hour, "CASE-42", ""},
		{2 * time.Hour, "CASE-42", "between 1 minute and 1 hour 30 minutes"},
		{time.Hour, "because", "Justification: Bug or case number"},
		{time.Hour, "", "between 1 and 100 characters"},
	} {
		_, err := pol.Join(policy.Request{Subject: alice, Entitlement: id, Duration: tc.d, Inputs: map[string]any{"justification": tc.j}})
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v %q: %v, want %q", tc.d, tc.j, err, tc.want)
		}
	}
	admin := policy.NewSubject("root@example.com", []string{"jit-admins@example.com"}, true)
	// EXPORT and RECONCILE include VIEW (docs/jit-access.md §3.3): admins see
	// every entitlement, and may request none.
	for _, a := range pol.Evaluate(admin) {
		if a.Join || a.ApproveOthers {
			t.Errorf("admin may act on %s: %+v", a.Group.ID(), a)
		}
	}
	if n := len(pol.Evaluate(admin)); n != len(pol.Groups()) {
		t.Errorf("admin sees %d of %d entitlements", n, len(pol.Groups()))
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	err := (&Config{Scope: []string{"bogus"}, MaxDuration: time.Second, JustificationPattern: "(", Admins: []string{"serviceAccount:x@y.z"}}).Validate()
	for _, want := range []string{"Scope: \"bogus\"", "clients are required", "MaxDuration", "JustificationPattern", "Admins"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, missing %q", err, want)
		}
	}
}
