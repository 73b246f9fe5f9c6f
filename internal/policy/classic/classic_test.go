package classic

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	resourcemanager "cloud.google.com/go/resourcemanager/apiv3"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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
	cfg, _ := setupServer(t)
	return cfg
}

func setupServer(t *testing.T) (Config, *localiam.Server) {
	t.Helper()
	srv, err := localiam.New(localiam.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []error{
		srv.AddOrganization("100000000001"),
		srv.AddFolder("200000000001", "organizations/100000000001"),
		srv.AddProject("demo-project", 300000000001, "folders/200000000001"),
		srv.AddFolder("200000000002", "folders/200000000001"),
		srv.AddProject("nested-project", 300000000002, "folders/200000000002"),
		srv.AddProject("outside", 300000000003, "organizations/100000000001"),
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
		// The marker's text inside a string literal is no marker.
		binding("roles/bigquery.admin", `resource.name == "has({}.jitAccessConstraint)"`, "user:alice@example.com"),
		binding("roles/pubsub.admin", `'x && has({}.jitAccessConstraint)' != ''`, "user:alice@example.com"),
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
	if _, err := srv.SetPolicy("projects/outside", &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{
		binding("roles/iam.securityAdmin", "has({}.jitAccessConstraint)", "user:alice@example.com"),
	}}); err != nil {
		t.Fatal(err)
	}
	return Config{
		Scope:     []string{"folders/200000000001"},
		Hierarchy: &ResourceManager{FolderClient: folders, ProjectClient: projects},
		Projects:  projects, Folders: folders, Organizations: orgs,
		JustificationPattern: `CASE-\d+`,
		Admins:               []string{"group:jit-admins@example.com"},
	}, srv
}

// load builds a catalog and the merged policy of a one-group document and
// the classic environment.
func load(t *testing.T, cfg Config) (*Catalog, *policy.Policy) {
	t.Helper()
	cat, err := NewCatalog(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pol, _, err := NewSource(docs(t), cat, nil).Current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return cat, pol
}

// staticDocs is a policy document source that never changes.
type staticDocs struct{ pol *policy.Policy }

func (d staticDocs) Current(context.Context) (*policy.Policy, string, error) { return d.pol, "v1", nil }

func docs(t *testing.T) staticDocs {
	t.Helper()
	pol, err := policy.Compile([]byte(`schemaVersion: 1
environment:
  name: docs
  access: [{principal: "group:jit-admins@example.com", allow: "RECONCILE"}]
  systems:
    - name: app
      groups:
        - name: viewer
          access: [{principal: "user:alice@example.com", allow: "JOIN, APPROVE_SELF"}]
          constraints: {join: [{type: expiry, min: PT1M, max: PT1H}]}
          privileges: {iam: [{resource: "projects/demo-project", role: "roles/viewer"}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	return staticDocs{pol}
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
	_, pol := load(t, setup(t))
	alice := policy.NewSubject("alice@example.com", nil, true)
	bob := policy.NewSubject("bob@example.com", nil, true)
	sre := policy.NewSubject("dave@example.com", []string{"sre@example.com"}, true)
	auditor := policy.NewSubject("erin@example.com", []string{"auditors@example.com"}, true)
	for _, tc := range []struct {
		who  policy.Subject
		want []string
	}{
		// compute.admin is eligible both ways for Alice: it shows once,
		// self-approved. storage.admin's top-level || makes it not
		// eligible, and so does a marker inside a string literal
		// (bigquery, pubsub). The owner binding on a project outside the
		// scope is not seen. The document's entitlement is beside them.
		{alice, []string{
			"classic.demo-project.compute-admin self [roles/compute.admin on projects/demo-project]",
			"classic.demo-project.compute-viewer self [roles/compute.viewer on projects/demo-project]",
			"docs.app.viewer self [roles/viewer on projects/demo-project]",
		}},
		// The resource condition is canonicalised and carried into the privilege.
		{bob, []string{
			"classic.demo-project.compute-admin approval [roles/compute.admin on projects/demo-project]",
			`classic.demo-project.secretmanager-secretaccessor-` + groupName("", `resource.name == "projects/demo-project/secrets/db"`)[1:] +
				` self [roles/secretmanager.secretAccessor on projects/demo-project if resource.name == "projects/demo-project/secrets/db"]`,
		}},
		{sre, []string{"classic.demo-project.compute-viewer self [roles/compute.viewer on projects/demo-project]"}},
		// Folder-level eligibility is inherited by every project below the
		// folder, nested folders too, and activated on the project, as in
		// JIT Access; never on the folder itself.
		{auditor, []string{
			"classic.demo-project.resourcemanager-folderviewer approval [roles/resourcemanager.folderViewer on projects/demo-project]",
			"classic.nested-project.resourcemanager-folderviewer approval [roles/resourcemanager.folderViewer on projects/nested-project]",
		}},
	} {
		if diff := cmp.Diff(tc.want, summary(pol, tc.who)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.who.Email, diff)
		}
	}

	// Peers holding the same MPA-eligible binding approve; never the requester.
	g, _ := pol.Group("classic.demo-project.compute-admin")
	got := principals(g.Approvers("bob@example.com"))
	sort.Strings(got)
	if diff := cmp.Diff([]string{"user:alice@example.com", "user:carol@example.com"}, got); diff != "" {
		t.Errorf("approvers for bob (-want +got):\n%s", diff)
	}
	if c := g.Classic(); c == nil || c.MaxRoles != 10 || c.MinReviewers != 1 || c.MaxReviewers != 10 {
		t.Errorf("classic options = %+v, want JIT Access's defaults", c)
	}
	// The other members of an MPA-eligible group approve.
	if _, err := pol.Join(policy.Request{Subject: auditor, Entitlement: "classic.nested-project.resourcemanager-folderViewer", Duration: time.Hour, Inputs: map[string]any{"justification": "CASE-1"}}); err != nil {
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

// JIT Access's checks (docs/jit-access.md §1.6, §1.7): the whole
// justification must match, shorter than 100 characters, and the
// duration is one minute to ACTIVATION_TIMEOUT.
func TestClassicConstraints(t *testing.T) {
	t.Parallel()
	cfg := setup(t)
	cfg.MaxDuration = 90 * time.Minute
	_, pol := load(t, cfg)
	alice := policy.NewSubject("alice@example.com", nil, true)
	id := "classic.demo-project.compute-viewer"
	for _, tc := range []struct {
		d    time.Duration
		j    string
		want string
	}{
		{time.Hour, "CASE-42", ""},
		{90 * time.Minute, "CASE-42", ""},
		{2 * time.Hour, "CASE-42", "out of range (PT1M to PT1H30M)"},
		{30 * time.Second, "CASE-42", "out of range"},
		{0, "CASE-42", "no duration was given"},
		// A partial match is no match: the pattern is anchored.
		{time.Hour, "see CASE-42", "Justification does not meet criteria: Bug or case number"},
		{time.Hour, "CASE-42 and more", "Justification does not meet criteria"},
		{time.Hour, "because", "Justification does not meet criteria"},
		{time.Hour, "", "between 1 and 99 characters"},
		{time.Hour, "CASE-" + strings.Repeat("1", 95), "between 1 and 99 characters"},
		{time.Hour, "CASE-" + strings.Repeat("1", 94), ""},
	} {
		_, err := pol.Join(policy.Request{Subject: alice, Entitlement: id, Duration: tc.d, Inputs: map[string]any{"justification": tc.j}})
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v %q: %v, want %q", tc.d, tc.j, err, tc.want)
		}
	}
	admin := policy.NewSubject("root@example.com", []string{"jit-admins@example.com"}, true)
	// RECONCILE on the classic environment (or the document's) makes an
	// administrator of its grants; they may request none of its roles.
	if !pol.Reconciles(admin, id) || pol.Reconciles(alice, id) {
		t.Errorf("Reconciles(admin) = %v, Reconciles(alice) = %v; want true, false", pol.Reconciles(admin, id), pol.Reconciles(alice, id))
	}
	for a := range pol.Visible(admin) {
		if a.Join || a.ApproveOthers {
			t.Errorf("admin may act on %s: %+v", a.Group.ID(), a)
		}
	}
}

// A listing may use the cache; a decision reads the project's and its
// ancestors' policies again, so a removed eligibility counts at once.
func TestFreshSeesRemoval(t *testing.T) {
	t.Parallel()
	cfg, srv := setupServer(t)
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	cfg.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cat, err := NewCatalog(cfg)
	if err != nil {
		t.Fatal(err)
	}
	src := NewSource(docs(t), cat, nil)
	auditor := policy.NewSubject("erin@example.com", []string{"auditors@example.com"}, true)
	id := "classic.nested-project.resourcemanager-folderviewer"
	can := func(pol *policy.Policy) bool { a, ok := pol.Check(auditor, id); return ok && a.Join }
	pol, v1, err := src.Current(t.Context())
	if err != nil || !can(pol) {
		t.Fatalf("Current = %v, %v; want %s joinable", v1, err, id)
	}
	// The folder's eligible binding goes away.
	if _, err := srv.SetPolicy("folders/200000000001", &iampb.Policy{Version: 3}); err != nil {
		t.Fatal(err)
	}
	if pol, v2, _ := src.Current(t.Context()); !can(pol) || v2 != v1 {
		t.Errorf("within MaxAge the listing is cached: joinable %v, version %s → %s", can(pol), v1, v2)
	}
	pol, v3, err := src.Fresh(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if can(pol) || v3 == v1 {
		t.Errorf("Fresh: joinable %v, version %s → %s; want the removal seen and a new version", can(pol), v1, v3)
	}
	if pol, _, _ := src.Current(t.Context()); can(pol) {
		t.Error("after Fresh the listing still offers the removed eligibility")
	}
	// Past MaxAge everything has been read again.
	if _, err := srv.SetPolicy("folders/200000000001", &iampb.Policy{Version: 3, Bindings: []*iampb.Binding{
		binding("roles/resourcemanager.folderViewer", "has({}.multiPartyApprovalConstraint)", "group:auditors@example.com"),
	}}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(5*time.Minute + time.Second)
	mu.Unlock()
	if pol, _, _ := src.Current(t.Context()); !can(pol) {
		t.Error("past MaxAge the listing does not offer the restored eligibility")
	}
}

// A catalog that cannot read serves what it has to listings, and refuses
// decisions on its roles; the document's entitlements stay.
func TestCatalogFailure(t *testing.T) {
	t.Parallel()
	cfg := setup(t)
	cfg.Scope = []string{"folders/999"} // no such folder
	cat, err := NewCatalog(cfg)
	if err != nil {
		t.Fatal(err)
	}
	src := NewSource(docs(t), cat, nil)
	pol, _, err := src.Current(t.Context())
	if err != nil {
		t.Fatalf("Current = %v; want the document's policy served", err)
	}
	if _, ok := pol.Group("docs.app.viewer"); !ok {
		t.Error("the document's entitlement is missing")
	}
	if _, _, err := src.Fresh(t.Context(), "classic.demo-project.compute-viewer"); err == nil {
		t.Error("Fresh succeeded though the scope cannot be read")
	}
	if _, _, err := src.Fresh(t.Context(), "docs.app.viewer"); err != nil {
		t.Errorf("Fresh of a document entitlement = %v; want the document's policy", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	err := (&Config{Scope: []string{"bogus", "projects/a/b"}, MaxDuration: time.Second, JustificationPattern: "(", Admins: []string{"serviceAccount:x@y.z"},
		MinReviewers: 5, MaxReviewers: 2, RequestTimeout: time.Second}).Validate()
	for _, want := range []string{`Scope: "bogus"`, `Scope: "projects/a/b"`, "clients are required", "MaxDuration", "JustificationPattern", "Admins", "MinReviewers", "RequestTimeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, missing %q", err, want)
		}
	}
}

// The option names are JIT Access's (docs/jit-access.md §2.1).
func TestOptions(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	got, err := FromLookup(env(
		"RESOURCE_SCOPE", "organizations/1, folders/2,projects/p-123456", "RESOURCE_CATALOG", "AssetInventory",
		"ACTIVATION_TIMEOUT", "60", "ELEVATION_DURATION", "30", "JUSTIFICATION_PATTERN", `^CASE-\d+$`, "JUSTIFICATION_HINT", "A case",
		"ACTIVATION_REQUEST_MAX_ROLES", "3", "ACTIVATION_REQUEST_TIMEOUT", "20", "ACTIVATION_REQUEST_MIN_REVIEWERS", "2",
		"ACTIVATION_REQUEST_MAX_REVIEWERS", "4", "JIT_CATALOG_MAX_AGE", "60",
	)).Options()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Scope: []string{"organizations/1", "folders/2", "projects/p-123456"},
		// ELEVATION_DURATION is read first in JIT Access, so it wins.
		MaxDuration: 30 * time.Minute, JustificationPattern: `^CASE-\d+$`, JustificationHint: "A case",
		MaxRoles: 3, RequestTimeout: 20 * time.Minute, MinReviewers: 2, MaxReviewers: 4, MaxAge: time.Minute,
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Config{}, "Now", "Logger")); diff != "" {
		t.Errorf("Options (-want +got):\n%s", diff)
	}
	if !FromLookup(env("RESOURCE_SCOPE", "projects/p-123456")).Enabled() || FromLookup(env()).Enabled() {
		t.Error("Enabled does not follow RESOURCE_SCOPE")
	}
	for _, tc := range []struct {
		env  []string
		want []string
	}{
		{[]string{"RESOURCE_SCOPE", "projects/p-123456", "RESOURCE_CATALOG", "Magic"}, []string{"RESOURCE_CATALOG"}},
		{[]string{"RESOURCE_SCOPE", "projects/p-123456", "AVAILABLE_PROJECTS_QUERY", "state:ACTIVE"}, []string{"AVAILABLE_PROJECTS_QUERY is not supported"}},
		{[]string{"RESOURCE_SCOPE", "projects/p-123456", "ACTIVATION_TIMEOUT", "2h", "ACTIVATION_REQUEST_MAX_ROLES", "0", "JIT_CATALOG_MAX_AGE", "-1"},
			[]string{"ACTIVATION_TIMEOUT must be", "ACTIVATION_REQUEST_MAX_ROLES must be", "JIT_CATALOG_MAX_AGE must be"}},
		// Java-only regular expressions are refused at start, not at the first request.
		{[]string{"RESOURCE_SCOPE", "projects/p-123456", "JUSTIFICATION_PATTERN", `(?<=CASE)-\d+`}, []string{"JUSTIFICATION_PATTERN is not a regular expression"}},
		{[]string{"RESOURCE_SCOPE", "projects/a/b,folders/x"}, []string{`"projects/a/b"`, `"folders/x"`}},
		{[]string{"ACTIVATION_REQUEST_MAX_ROLES", "5"}, []string{"ACTIVATION_REQUEST_MAX_ROLES is set but RESOURCE_SCOPE is not"}},
	} {
		_, err := FromLookup(env(tc.env...)).Options()
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%v: Options() = %v, missing %q", tc.env, err, w)
			}
		}
	}
}

// A cold catalog read slowly answers a listing with what it has after
// ListingWait and says it is incomplete; the refresh goes on in the
// background. One project is read at once, whatever the catalog holds.
func TestSlowCatalog(t *testing.T) {
	t.Parallel()
	cfg := setup(t)
	cfg.ReadsPerSecond, cfg.ListingWait = 4, 50*time.Millisecond
	cfg.Scope = []string{"organizations/100000000001"} // 2 folders, 3 projects, the organization
	cat, err := NewCatalog(cfg)
	if err != nil {
		t.Fatal(err)
	}
	src := NewSource(docs(t), cat, nil)
	alice := policy.NewSubject("alice@example.com", nil, true)
	if _, _, err := src.Current(t.Context()); err != nil {
		t.Fatal(err)
	}
	if src.Complete() {
		t.Fatal("a cold catalog paced at 4 calls a second is complete after 50 ms")
	}
	pol, _, err := src.ForProject(t.Context(), "demo-project")
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := pol.Check(alice, "classic.demo-project.compute-viewer"); !ok || !a.SelfApprove {
		t.Errorf("one project's listing lacks alice's compute-viewer: %+v %v", a, ok)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !src.Complete() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if _, _, err := src.Current(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if !src.Complete() {
		t.Fatal("the background refresh never completed")
	}
	// The owner binding on "outside" is in the organization's scope now.
	if pol, _, _ := src.Current(t.Context()); len(pol.Evaluate(alice)) == 0 {
		t.Error("the completed listing offers alice nothing")
	} else if _, ok := pol.Check(alice, "classic.outside.iam-securityadmin"); !ok {
		t.Error("the completed listing lacks the project outside the folder")
	}
}
