package classic_test

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	resourcemanager "cloud.google.com/go/resourcemanager/apiv3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/api/option"
	"google.golang.org/genproto/googleapis/type/expr"
	"google.golang.org/grpc"

	"github.com/jitpipeline/jit/internal/local/gcp/localiam"
	"github.com/jitpipeline/jit/internal/local/gcp/loopback"
	"github.com/jitpipeline/jit/internal/policy"
	"github.com/jitpipeline/jit/internal/policy/classic"
)

// The item 2: listing a user's eligible roles over a scope of 500
// projects of the local Resource Manager, cold (a new catalog) and warm
// (a primed one, within MaxAge), with the API calls it costs.

const (
	scopeOrg    = "organizations/1"
	aliceMember = "user:alice@example.com" // the listing user
	sreMember   = "group:sre@example.com"  // a group she is in
	benchMaxAge = time.Hour                // long enough that the warm benchmark never refreshes
	listMax     = 1000                     // the page size ResourceManager asks for
)

var aliceSubject = policy.NewSubject("alice@example.com", []string{"sre@example.com"}, true)

// eligibleSpec is one eligible binding the world was given.
type eligibleSpec struct {
	role    string
	mpa     bool
	members []string
}

func (s eligibleSpec) binding() *iampb.Binding {
	marker := "has({}.jitAccessConstraint)"
	if s.mpa {
		marker = "has({}.multiPartyApprovalConstraint)"
	}
	return &iampb.Binding{Role: s.role, Members: s.members, Condition: &expr.Expr{Title: "eligible", Expression: marker}}
}

// benchWorld is an organization with five folders (folders/105 inside
// folders/101) and projects spread under all six, each project with one
// to three eligible bindings, for users and groups, and some bindings
// that are not eligible; folders/101 and folders/105 hold eligible
// bindings their projects inherit, the organization one Alice is not in.
type benchWorld struct {
	srv       *localiam.Server
	hierarchy *classic.ResourceManager
	clients   struct {
		projects *resourcemanager.ProjectsClient
		folders  *resourcemanager.FoldersClient
		orgs     *resourcemanager.OrganizationsClient
	}
	calls *callCounter

	parents   map[string]string         // resource → parent ("" for the organization)
	eligible  map[string][]eligibleSpec // resource → its eligible bindings
	resources int                       // organization, folders and projects
	walk      map[string]int            // ListFolders and ListProjects calls (pages) of one walk
	want      []string                  // Alice's classic entitlements, as eligibleSummary gives them
}

var projectRoles = []string{"roles/compute.viewer", "roles/compute.admin", "roles/storage.objectViewer"}

func newBenchWorld(tb testing.TB, projects int) *benchWorld {
	tb.Helper()
	srv, err := localiam.New(localiam.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	w := &benchWorld{srv: srv, parents: map[string]string{scopeOrg: ""}, eligible: map[string][]eligibleSpec{}, calls: &callCounter{n: map[string]int{}}}
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	must(srv.AddOrganization("1"))
	for _, f := range []struct{ id, parent string }{
		{"101", scopeOrg}, {"102", scopeOrg}, {"103", scopeOrg}, {"104", scopeOrg}, {"105", "folders/101"},
	} {
		must(srv.AddFolder(f.id, f.parent))
		w.parents["folders/"+f.id] = f.parent
	}
	containers := []string{scopeOrg, "folders/101", "folders/102", "folders/103", "folders/104", "folders/105"}
	w.eligible[scopeOrg] = []eligibleSpec{{role: "roles/browser", members: []string{"user:carol@example.com"}}}
	w.eligible["folders/101"] = []eligibleSpec{{role: "roles/compute.admin", mpa: true, members: []string{aliceMember, "user:bob@example.com"}}}
	w.eligible["folders/102"] = []eligibleSpec{{role: "roles/storage.objectViewer", members: []string{"user:bob@example.com"}}}
	w.eligible["folders/105"] = []eligibleSpec{{role: "roles/logging.viewer", members: []string{sreMember}}}
	extra := map[string][]*iampb.Binding{}
	for i := range projects {
		name := fmt.Sprintf("projects/p-%04d", i)
		parent := containers[i%len(containers)]
		must(srv.AddProject(strings.TrimPrefix(name, "projects/"), int64(10_000+i), parent))
		w.parents[name] = parent
		for j := range 1 + i%3 {
			members := []string{"user:bob@example.com"}
			if (i+j)%5 == 0 {
				members = append(members, aliceMember)
			}
			if (i+j)%7 == 3 {
				members = append(members, sreMember)
			}
			if j == 0 {
				members = append(members, fmt.Sprintf("serviceAccount:robot@p-%04d.iam.gserviceaccount.com", i))
			}
			w.eligible[name] = append(w.eligible[name], eligibleSpec{role: projectRoles[j], mpa: j == 1, members: members})
		}
		if i%4 == 0 { // Alice holds roles that are not eligible ones
			extra[name] = []*iampb.Binding{
				{Role: "roles/viewer", Members: []string{aliceMember}},
				{Role: "roles/compute.networkViewer", Members: []string{aliceMember}, Condition: &expr.Expr{Title: "until 2040", Expression: "request.time < timestamp('2040-01-01T00:00:00Z')"}},
			}
		}
	}
	for r := range w.parents {
		var bs []*iampb.Binding
		for _, s := range w.eligible[r] {
			bs = append(bs, s.binding())
		}
		bs = append(bs, extra[r]...)
		if len(bs) > 0 {
			_, err := srv.SetPolicy(r, &iampb.Policy{Version: 3, Bindings: bs})
			must(err)
		}
	}
	w.resources = len(w.parents)
	w.walk = walkPages(w.parents)
	w.want = w.expected(map[string]bool{aliceMember: true, sreMember: true}, false)

	g, err := loopback.ServeGRPC("", srv.Register)
	must(err)
	tb.Cleanup(g.Stop)
	opts := append(g.ClientOptions(), option.WithGRPCDialOption(grpc.WithChainUnaryInterceptor(w.calls.intercept)))
	ctx := context.Background()
	w.clients.projects, err = resourcemanager.NewProjectsClient(ctx, opts...)
	must(err)
	w.clients.folders, err = resourcemanager.NewFoldersClient(ctx, opts...)
	must(err)
	w.clients.orgs, err = resourcemanager.NewOrganizationsClient(ctx, opts...)
	must(err)
	tb.Cleanup(func() { w.clients.projects.Close(); w.clients.folders.Close(); w.clients.orgs.Close() })
	w.hierarchy = &classic.ResourceManager{FolderClient: w.clients.folders, ProjectClient: w.clients.projects}
	return w
}

// walkPages is how many list calls walking the organization takes: for
// every organization and folder, one ListFolders per page of its direct
// child folders and one ListProjects per page of its direct projects (one
// page when it has none).
func walkPages(parents map[string]string) map[string]int {
	folders, projects := map[string]int{}, map[string]int{}
	for r, p := range parents {
		switch {
		case strings.HasPrefix(r, "folders/"):
			folders[p]++
		case strings.HasPrefix(r, "projects/"):
			projects[p]++
		}
	}
	pages := func(n int) int { return max(1, (n+listMax-1)/listMax) }
	calls := map[string]int{}
	for r := range parents {
		if !strings.HasPrefix(r, "projects/") {
			calls["ListFolders"] += pages(folders[r])
			calls["ListProjects"] += pages(projects[r])
		}
	}
	return calls
}

// expected is what a holder of the principals in who may request, from the
// bindings the world was given: every project with an eligible binding of
// theirs on it or an ancestor (only an ancestor if ancestorsOnly), one
// entitlement per role, granted on the project, self-approved if any of
// their bindings of the role is JIT.
func (w *benchWorld) expected(who map[string]bool, ancestorsOnly bool) []string {
	var out []string
	for p := range w.parents {
		if !strings.HasPrefix(p, "projects/") {
			continue
		}
		self := map[string]bool{} // role → self-approved
		for r := p; r != ""; r = w.parents[r] {
			if ancestorsOnly && r == p {
				continue
			}
			for _, s := range w.eligible[r] {
				for _, m := range s.members {
					if who[m] {
						self[s.role] = self[s.role] || !s.mpa
					}
				}
			}
		}
		for role, selfApproved := range self {
			mode := "approval"
			if selfApproved {
				mode = "self"
			}
			name := strings.NewReplacer(".", "-", "_", "-").Replace(strings.TrimPrefix(role, "roles/"))
			id := strings.ToLower("classic." + strings.TrimPrefix(p, "projects/") + "." + name)
			out = append(out, fmt.Sprintf("%s %s %s on %s", id, mode, role, p))
		}
	}
	sort.Strings(out)
	return out
}

// callCounter counts the RPCs the clients send, by method name.
type callCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *callCounter) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c.mu.Lock()
	c.n[path.Base(method)]++
	c.mu.Unlock()
	return invoker(ctx, method, req, reply, cc, opts...)
}

// take returns the counts so far and starts again from zero.
func (c *callCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}

// tinyDocs is a policy document with one entitlement of its own.
type tinyDocs struct{ pol *policy.Policy }

func (d tinyDocs) Current(context.Context) (*policy.Policy, string, error) { return d.pol, "v1", nil }

const docsYAML = `schemaVersion: 1
environment:
  name: docs
  systems:
    - name: tools
      groups:
        - name: operator
          access:
            - {principal: "group:sre@example.com", allow: "JOIN, APPROVE_SELF"}
          privileges:
            iam:
              - {resource: projects/tools-project, role: roles/viewer}
`

func newTinyDocs(tb testing.TB) tinyDocs {
	tb.Helper()
	pol, err := policy.Compile([]byte(docsYAML))
	if err != nil {
		tb.Fatal(err)
	}
	return tinyDocs{pol}
}

func (w *benchWorld) source(tb testing.TB, d tinyDocs, now func() time.Time) *classic.Source {
	tb.Helper()
	cat, err := classic.NewCatalog(classic.Config{
		Scope:     []string{scopeOrg},
		Hierarchy: w.hierarchy,
		Projects:  w.clients.projects, Folders: w.clients.folders, Organizations: w.clients.orgs,
		MaxAge: benchMaxAge,
		Now:    now,
		// The fake has no quota: measure the catalog, not the limiter
		// (the benchmark reports the time the calls take at the default
		// limit too).
		ReadsPerSecond: -1,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return classic.NewSource(d, cat, nil)
}

// listAlice is the listing: the policy for listings, evaluated for Alice.
func listAlice(ctx context.Context, src *classic.Source) ([]policy.Access, string, error) {
	pol, v, err := src.Current(ctx)
	if err != nil {
		return nil, "", err
	}
	return pol.Evaluate(aliceSubject), v, nil
}

// eligibleSummary renders the classic entitlements of a listing as expected does.
func eligibleSummary(as []policy.Access) []string {
	var out []string
	for _, a := range as {
		if !strings.HasPrefix(a.Group.ID(), "classic.") {
			continue
		}
		mode := "view"
		switch {
		case a.SelfApprove:
			mode = "self"
		case a.Join:
			mode = "approval"
		}
		for _, p := range a.Group.Privileges {
			out = append(out, fmt.Sprintf("%s %s %s on %s", a.Group.ID(), mode, p.Role, p.Resource))
		}
	}
	sort.Strings(out)
	return out
}

func classicCount(as []policy.Access) int {
	n := 0
	for _, a := range as {
		if strings.HasPrefix(a.Group.ID(), "classic.") {
			n++
		}
	}
	return n
}

// fakeClock is a fake clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestListingCalls(t *testing.T) {
	t.Parallel()
	w := newBenchWorld(t, 50)
	d := newTinyDocs(t)
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	src := w.source(t, d, clk.Now)
	ctx := t.Context()

	// The world is what the test means: Alice is eligible directly, through
	// sre and by inheritance from folders.
	direct := w.expected(map[string]bool{aliceMember: true}, false)
	viaGroup := w.expected(map[string]bool{sreMember: true}, false)
	inherited := w.expected(map[string]bool{aliceMember: true, sreMember: true}, true)
	if len(direct) == 0 || len(viaGroup) == 0 || len(inherited) == 0 {
		t.Fatalf("the world lacks a kind of eligibility: %d direct, %d via sre, %d inherited", len(direct), len(viaGroup), len(inherited))
	}
	wantCalls := func(walk bool, reads int) map[string]int {
		m := map[string]int{}
		if walk {
			for k, v := range w.walk {
				m[k] = v
			}
		}
		if reads > 0 {
			m["GetIamPolicy"] = reads
		}
		return m
	}

	// Cold: one walk, every resource's policy read once.
	as, v, err := listAlice(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(w.want, eligibleSummary(as)); diff != "" {
		t.Errorf("cold listing (-want +got):\n%s", diff)
	}
	pol, _, err := src.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		who  policy.Subject
		want []string
	}{
		{"alice, no groups", policy.NewSubject("alice@example.com", nil, true), direct},
		{"another member of sre", policy.NewSubject("dave@example.com", []string{"sre@example.com"}, true), viaGroup},
	} {
		if diff := cmp.Diff(tc.want, eligibleSummary(pol.Evaluate(tc.who))); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	if !strings.HasPrefix(v, "v1+classic.") {
		t.Errorf("version %q, want the document's and the catalog's", v)
	}
	if n := len(as) - classicCount(as); n != 1 {
		t.Errorf("the document's entitlement shows %d times, want once", n)
	}
	if diff := cmp.Diff(wantCalls(true, w.resources), w.calls.take()); diff != "" {
		t.Errorf("cold calls (-want +got):\n%s", diff)
	}

	// Warm: nothing read.
	clk.Advance(benchMaxAge / 4)
	as, v2, err := listAlice(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{}, w.calls.take()); diff != "" {
		t.Errorf("warm calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(w.want, eligibleSummary(as)); diff != "" || v2 != v {
		t.Errorf("warm listing, version %q then %q (-want +got):\n%s", v, v2, diff)
	}

	// At 3/4 of MaxAge the entries whose jittered age (between MaxAge/2
	// and MaxAge) has passed are read again — about half — and the
	// folders are not listed again.
	clk.Advance(benchMaxAge / 2)
	as, v3, err := listAlice(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	got := w.calls.take()
	reread := got["GetIamPolicy"]
	if reread == 0 || reread == w.resources || len(got) != 1 {
		t.Errorf("at 3/4 of MaxAge: calls %v, want some but not all of %d policies read and no listing", got, w.resources)
	}
	t.Logf("%d resources, list calls of a walk %v; %d entitlements (%d direct, %d via sre, %d inherited); %d of the policies read again at 3/4 of MaxAge",
		w.resources, w.walk, len(w.want), len(direct), len(viaGroup), len(inherited), reread)
	if diff := cmp.Diff(w.want, eligibleSummary(as)); diff != "" || v3 != v {
		t.Errorf("after the partial refresh, version %q then %q (-want +got):\n%s", v, v3, diff)
	}

	// Past MaxAge: the scope is walked again, and the entries not read at
	// 3/4 are due, those read then are not (due at 5/4 of MaxAge at the
	// earliest). Unchanged etags and tree keep the environment as it was.
	clk.Advance(benchMaxAge/4 + time.Second)
	as, v4, err := listAlice(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantCalls(true, w.resources-reread), w.calls.take()); diff != "" {
		t.Errorf("past MaxAge, calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(w.want, eligibleSummary(as)); diff != "" || v4 != v {
		t.Errorf("after the walk, version %q then %q (-want +got):\n%s", v, v4, diff)
	}
}

func BenchmarkListing(b *testing.B) {
	const projects = 500
	w := newBenchWorld(b, projects)
	d := newTinyDocs(b)
	ctx := context.Background()
	report := func(b *testing.B, found int) {
		n := w.calls.take()
		lists, reads := n["ListFolders"]+n["ListProjects"], n["GetIamPolicy"]
		all := 0
		for _, c := range n {
			all += c
		}
		per := func(c int) float64 { return float64(c) / float64(b.N) }
		b.ReportMetric(per(all), "api-calls/op")
		b.ReportMetric(per(lists), "list-calls/op")
		b.ReportMetric(per(reads), "getIamPolicy/op")
		b.ReportMetric(float64(found), "entitlements")
		// On Google Cloud the calls are paced at the catalog's default
		// of 5 a second, under Resource Manager's 10 a second.
		b.ReportMetric(per(all)/5, "s-at-5-calls/s/op")
		if found != len(w.want) {
			b.Errorf("found %d entitlements, want %d", found, len(w.want))
		}
	}

	b.Run(fmt.Sprintf("projects=%d/cold", projects), func(b *testing.B) {
		found := 0
		w.calls.take()
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			src := w.source(b, d, nil)
			b.StartTimer()
			as, _, err := listAlice(ctx, src)
			if err != nil {
				b.Fatal(err)
			}
			found = classicCount(as)
		}
		b.StopTimer()
		report(b, found)
	})

	b.Run(fmt.Sprintf("projects=%d/warm", projects), func(b *testing.B) {
		src := w.source(b, d, nil)
		if _, _, err := listAlice(ctx, src); err != nil {
			b.Fatal(err)
		}
		found := 0
		w.calls.take()
		b.ResetTimer()
		for range b.N {
			as, _, err := listAlice(ctx, src)
			if err != nil {
				b.Fatal(err)
			}
			found = classicCount(as)
		}
		b.StopTimer()
		report(b, found)
	})
}
