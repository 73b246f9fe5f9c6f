package pipeline_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/iamcond"
	"github.com/jitpipeline/jit/internal/local/pipeline"
	"github.com/jitpipeline/jit/internal/policy/classic"
)

// The demo world's JIT Access bindings (internal/local/world/demo.yaml):
// on demo-prod, compute.viewer for the sre and developers groups,
// logging.viewer for alice directly, compute.admin with a peer's approval
// for sre and erin; on the production folder, monitoring.viewer for sre,
// inherited by demo-prod and demo-project.
const (
	alice         = "alice@example.com"
	computeViewer = "classic.demo-prod.compute-viewer"
	loggingViewer = "classic.demo-prod.logging-viewer"
	computeAdmin  = "classic.demo-prod.compute-admin"
	prodMonitor   = "classic.demo-prod.monitoring-viewer"
	demoMonitor   = "classic.demo-project.monitoring-viewer"
)

func startClassic(t *testing.T, cfg pipeline.Config) *env {
	t.Helper()
	cfg.Classic = classic.Env{Pattern: `CASE-\d+`, Hint: "A case number, CASE-123", MaxRoles: "2"}
	return start(t, cfg)
}

// entitlements maps the caller's entitlement IDs to their classic
// activation type ("" for the policy document's).
func (e *env) entitlements(user string) map[string]string {
	e.t.Helper()
	code, body := e.call("GET", "/v1/entitlements", user, nil)
	if code != http.StatusOK {
		e.t.Fatalf("GET /v1/entitlements as %s: %d %v", user, code, body)
	}
	out := map[string]string{}
	for _, raw := range body["entitlements"].([]any) {
		ent := raw.(map[string]any)
		kind := ""
		if c, ok := ent["classic"].(map[string]any); ok {
			kind = c["activationType"].(string)
		}
		out[ent["id"].(string)] = kind
	}
	return out
}

// activations lists the temporary bindings of a resource's IAM policy.
func (e *env) activations(resource string) []*iampb.Binding {
	var out []*iampb.Binding
	for _, b := range e.p.Cloud.IAM.Policy(resource).GetBindings() {
		if b.GetCondition().GetTitle() == iamcond.ActivationTitle {
			out = append(out, b)
		}
	}
	return out
}

func (e *env) grantCount(user string) int {
	e.t.Helper()
	_, body := e.call("GET", "/v1/grants", user, nil)
	gs, _ := body["grants"].([]any)
	return len(gs)
}

// The first acceptance: alice sees her eligible bindings —
// directly, through groups, inherited from the folder — activates two
// roles in one request, and the emulated IAM holds both bindings in JIT
// Access's format until they end on time, verified.
func TestClassicActivation(t *testing.T) {
	t.Parallel()
	e := startClassic(t, pipeline.Config{})
	got := e.entitlements(alice)
	for id, want := range map[string]string{
		computeViewer: "JIT", loggingViewer: "JIT", computeAdmin: "MPA", prodMonitor: "JIT", demoMonitor: "JIT",
		"demo.demo-project.viewer": "",
	} {
		if got[id] != want {
			t.Errorf("alice's %s: %q, want %q (all: %v)", id, got[id], want, got)
		}
	}
	// carol is in developers and, through oncall, in sre; dave only in
	// developers; frank in none of the eligible groups.
	if c := e.entitlements(carol); c[computeViewer] != "JIT" || c[computeAdmin] != "MPA" || c[loggingViewer] != "" {
		t.Errorf("carol's classic entitlements: %v", c)
	}
	if d := e.entitlements(dave); d[computeViewer] != "JIT" || d[computeAdmin] != "" || d[prodMonitor] != "" {
		t.Errorf("dave's classic entitlements: %v", d)
	}
	if f := e.entitlements("frank@example.com"); f[computeViewer] != "" {
		t.Errorf("frank sees %v", f)
	}
	// One project's entitlements, its eligible bindings read at once.
	code, body := e.call("GET", "/v1/entitlements?project=demo-project", alice, nil)
	if code != http.StatusOK {
		t.Fatalf("GET ?project=demo-project: %d %v", code, body)
	}
	var onProject []string
	for _, raw := range body["entitlements"].([]any) {
		ent := raw.(map[string]any)
		onProject = append(onProject, ent["id"].(string))
		for _, p := range ent["privileges"].([]any) {
			if r := p.(map[string]any)["resource"]; r != "projects/demo-project" {
				t.Errorf("?project=demo-project lists %s, which grants on %v", ent["id"], r)
			}
		}
	}
	if !slices.Contains(onProject, demoMonitor) || !slices.Contains(onProject, "demo.demo-project.viewer") || slices.Contains(onProject, computeViewer) {
		t.Errorf("?project=demo-project lists %v", onProject)
	}
	if code, body := e.call("GET", "/v1/entitlements?project=Not_A_Project", alice, nil); code != http.StatusBadRequest {
		t.Errorf("?project=Not_A_Project: %d %v, want 400", code, body)
	}

	code, body = e.call("POST", "/v1/grants:batchCreate", alice, map[string]any{
		"entitlements": []string{computeViewer, loggingViewer}, "requestedDuration": "PT5M", "justification": "CASE-4711",
	})
	if code != http.StatusCreated {
		t.Fatalf("batchCreate: %d %v", code, body)
	}
	var ids []string
	for _, raw := range body["grants"].([]any) {
		ids = append(ids, raw.(map[string]any)["id"].(string))
	}
	if len(ids) != 2 {
		t.Fatalf("batchCreate made %d grants, want 2: %v", len(ids), body)
	}
	windows := map[string]string{}
	for i, id := range ids {
		g := e.waitState(alice, id, grant.Active)
		start, _ := time.Parse(time.RFC3339, g["startTime"].(string))
		end, _ := time.Parse(time.RFC3339, g["endTime"].(string))
		role := []string{"roles/compute.viewer", "roles/logging.viewer"}[i]
		windows[role] = iamcond.Activation(start, end, "")
	}
	// One binding per role for alice herself (not her group), with JIT
	// Access's title, expression and description.
	found := map[string]string{}
	for _, b := range e.activations("projects/demo-prod") {
		if !slices.Equal(b.GetMembers(), []string{"user:" + alice}) {
			t.Errorf("binding for %v, want alice alone", b.GetMembers())
		}
		if d := b.GetCondition().GetDescription(); d != `Self-approved, justification: "CASE-4711"` {
			t.Errorf("description %q", d)
		}
		found[b.GetRole()] = b.GetCondition().GetExpression()
	}
	if diff := cmp.Diff(windows, found); diff != "" {
		t.Errorf("activation bindings on demo-prod (-want +got):\n%s", diff)
	}
	for _, id := range ids {
		g := e.waitState(alice, id, grant.Ended)
		if g["revocationVerified"] != true {
			t.Errorf("%s ended without a verified removal", id)
		}
	}
	if left := e.activations("projects/demo-prod"); len(left) != 0 {
		t.Errorf("bindings left after the end: %v", left)
	}

	// A folder's eligible binding is inherited by the project and
	// activated on the project, as JIT Access does; never on the folder.
	id := e.requestWith(alice, demoMonitor, "CASE-1")
	g := e.waitState(alice, id, grant.Active)
	privs := g["privileges"].([]any)
	if len(privs) != 1 || privs[0].(map[string]any)["resource"] != "projects/demo-project" {
		t.Errorf("inherited grant's privileges %v, want the project", privs)
	}
	if len(e.activations("projects/demo-project")) != 1 || len(e.activations("folders/200000000001")) != 0 {
		t.Errorf("activation on demo-project %v, on the folder %v", e.activations("projects/demo-project"), e.activations("folders/200000000001"))
	}
}

// The refusals JIT Access would give (docs/jit-access.md §1.5–§1.7), each
// with a 400 naming the field and nothing stored or published.
func TestClassicRefusals(t *testing.T) {
	t.Parallel()
	e := startClassic(t, pipeline.Config{})
	before, events := e.grantCount(alice), published(e)
	for _, tc := range []struct {
		name  string
		path  string
		body  map[string]any
		field string
		says  string
	}{
		// The pattern must match the whole justification, not a part.
		{"partial match", "/v1/grants", map[string]any{"entitlement": computeViewer, "requestedDuration": "PT5M", "justification": "see CASE-1"},
			"inputs", "Justification does not meet criteria: A case number, CASE-123"},
		{"too long", "/v1/grants", map[string]any{"entitlement": computeViewer, "requestedDuration": "PT5M", "justification": "CASE-" + strings.Repeat("1", 95)},
			"inputs", "between 1 and 99 characters"},
		// ACTIVATION_TIMEOUT: 120 minutes by default.
		{"over the maximum", "/v1/grants", map[string]any{"entitlement": computeViewer, "requestedDuration": "PT2H1M", "justification": "CASE-1"},
			"requestedDuration", "out of range (PT1M to PT2H)"},
		// ACTIVATION_REQUEST_MAX_ROLES is 2 here.
		{"too many roles", "/v1/grants:batchCreate", map[string]any{"entitlements": []string{computeViewer, loggingViewer, prodMonitor}, "requestedDuration": "PT5M", "justification": "CASE-1"},
			"entitlements", "at most 2 roles"},
		// JIT Access drops roles of another project silently; refusing says why.
		// Duplicates count once; the field names the refused one where it was sent.
		{"two projects", "/v1/grants:batchCreate", map[string]any{"entitlements": []string{prodMonitor, prodMonitor, demoMonitor}, "requestedDuration": "PT5M", "justification": "CASE-1"},
			"entitlements[2]", "one project"},
		{"a peer-approved role", "/v1/grants:batchCreate", map[string]any{"entitlements": []string{computeViewer, computeAdmin}, "requestedDuration": "PT5M", "justification": "CASE-1"},
			"entitlements[1]", "needs a peer's approval"},
		{"a document entitlement", "/v1/grants:batchCreate", map[string]any{"entitlements": []string{computeViewer, "demo.demo-project.viewer"}, "requestedDuration": "PT5M", "justification": "CASE-1"},
			"entitlements[1]", "not a role of an eligible IAM binding"},
		{"reviewers for a self-approved role", "/v1/grants", map[string]any{"entitlement": computeViewer, "requestedDuration": "PT5M", "justification": "CASE-1", "reviewers": []string{bob}},
			"reviewers", "only for a peer-approved role"},
		{"no reviewers", "/v1/grants", map[string]any{"entitlement": computeAdmin, "requestedDuration": "PT5M", "justification": "CASE-1"},
			"reviewers", "choose between 1 and 10"},
	} {
		code, body := e.call("POST", tc.path, alice, tc.body)
		if field, msg := refusal(body); code != http.StatusBadRequest || field != tc.field || !strings.Contains(msg, tc.says) {
			t.Errorf("%s: %d %v, want 400 on %s saying %q", tc.name, code, body, tc.field, tc.says)
		}
	}
	if after := e.grantCount(alice); after != before {
		t.Errorf("refusals stored grants: %d → %d", before, after)
	}
	if after := published(e); after != events {
		t.Errorf("refusals published %d events", after-events)
	}
}

// The second acceptance: alice asks for compute.admin on
// demo-prod, choosing bob and erin; a non-peer, alice herself and nobody
// are refused; only the chosen reviewers are mailed; a peer she did not
// choose may not decide; erin, who lost her eligibility since, is refused
// from her link; bob approves from his; ACTIVE.
func TestClassicMultiPartyApproval(t *testing.T) {
	e := startClassic(t, pipeline.Config{Clock: clock.Real()})
	code, body := e.call("GET", "/v1/entitlements/"+computeAdmin+"/reviewers", alice, nil)
	if code != http.StatusOK {
		t.Fatalf("reviewers: %d %v", code, body)
	}
	if diff := cmp.Diff([]any{bob, carol, erin}, body["reviewers"]); diff != "" {
		t.Errorf("reviewers alice may choose (-want +got):\n%s", diff)
	}
	if code, _ := e.call("GET", "/v1/entitlements/"+computeAdmin+"/reviewers", dave, nil); code != http.StatusNotFound {
		t.Errorf("dave, not eligible, lists the reviewers: %d, want 404", code)
	}
	req := func(reviewers ...string) (int, map[string]any) {
		return e.call("POST", "/v1/grants", alice, map[string]any{
			"entitlement": computeAdmin, "requestedDuration": "PT30M", "justification": "CASE-9", "reviewers": reviewers,
		})
	}
	before := e.grantCount(alice)
	for _, tc := range []struct {
		reviewers []string
		field     string
		says      string
	}{
		{[]string{bob, dave}, "reviewers[1]", "is not a peer"},
		{[]string{alice}, "reviewers[0]", "your own request"},
		{[]string{"not an address"}, "reviewers[0]", ""},
	} {
		code, body := req(tc.reviewers...)
		if field, msg := refusal(body); code != http.StatusBadRequest || field != tc.field || !strings.Contains(msg, tc.says) {
			t.Errorf("reviewers %v: %d %v, want 400 on %s", tc.reviewers, code, body, tc.field)
		}
	}
	if n := e.grantCount(alice); n != before {
		t.Fatalf("refused requests stored %d grants", n-before)
	}

	code, body = req(bob, erin)
	if code != http.StatusCreated || body["state"] != string(grant.ApprovalAwaited) {
		t.Fatalf("request: %d %v", code, body)
	}
	id := body["id"].(string)
	if diff := cmp.Diff([]any{bob, erin}, body["reviewers"]); diff != "" {
		t.Errorf("grant's reviewers (-want +got):\n%s", diff)
	}
	ms := e.mailsAbout(id, 3) // bob, erin, and alice told whom she asked
	bobLink, erinLink := approvalLink(t, to(t, ms, bob)), approvalLink(t, to(t, ms, erin))
	if anyTo(ms, carol, "") {
		t.Error("carol, a peer alice did not choose, was mailed")
	}
	if code, body := e.call("POST", "/v1/grants/"+id+":approve", carol, map[string]any{}); code != http.StatusForbidden {
		t.Errorf("carol, not chosen, approves: %d %v, want 403", code, body)
	}

	// erin's eligibility is removed from demo-prod's policy; the listing
	// may still be cached, the decision is not.
	pol := e.p.Cloud.IAM.Policy("projects/demo-prod")
	for _, b := range pol.GetBindings() {
		if b.GetRole() == "roles/compute.admin" {
			b.Members = slices.DeleteFunc(b.Members, func(m string) bool { return m == "user:"+erin })
		}
	}
	if _, err := e.p.Cloud.IAM.SetPolicy("projects/demo-prod", pol); err != nil {
		t.Fatal(err)
	}
	if code, page := approveFromLink(t, e, erinLink, erin); code != http.StatusForbidden || !strings.Contains(text(page), "APPROVE_OTHERS") {
		t.Errorf("erin, no longer eligible, approves from her link: %d, want 403:\n%.400s", code, text(page))
	}
	if _, g := e.call("GET", "/v1/grants/"+id, alice, nil); g["state"] != string(grant.ApprovalAwaited) {
		t.Fatalf("after erin's refusal the grant is %v", g["state"])
	}

	if code, page := approveFromLink(t, e, bobLink, bob); code != http.StatusOK {
		t.Fatalf("bob approves from his link: %d\n%.400s", code, text(page))
	}
	e.waitState(alice, id, grant.Active)
	var desc string
	for _, b := range e.activations("projects/demo-prod") {
		if b.GetRole() == "roles/compute.admin" && slices.Equal(b.GetMembers(), []string{"user:" + alice}) {
			desc = b.GetCondition().GetDescription()
		}
	}
	if desc != `Approved by bob@example.com, justification: "CASE-9"` {
		t.Errorf("compute.admin activation description %q", desc)
	}
}

// refusal is the field and message of an API error body.
func refusal(body map[string]any) (field, message string) {
	e, _ := body["error"].(map[string]any)
	field, _ = e["field"].(string)
	message, _ = e["message"].(string)
	return field, message
}

var (
	formAction = regexp.MustCompile(`<form method="post" action="([^"]+)">`)
	formField  = regexp.MustCompile(`<input type="hidden" name="(t|csrf)" value="([^"]*)">`)
)

// approveFromLink opens an approval link as user and submits its form's
// Approve button, from the page's own origin, as a browser would; it
// returns the status of the page the decision leads to.
func approveFromLink(t *testing.T, e *env, link, user string) (int, string) {
	t.Helper()
	code, page := fetch(t, link, user)
	m := formAction.FindStringSubmatch(page)
	if code != http.StatusOK || m == nil {
		t.Fatalf("the approval page for %s: %d, form %v\n%.400s", user, code, m != nil, text(page))
	}
	form := url.Values{"decision": {"approve"}}
	for _, f := range formField.FindAllStringSubmatch(page, -1) {
		form.Set(f[1], html.UnescapeString(f[2]))
	}
	action, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	target, _ := action.Parse(html.UnescapeString(m[1]))
	req, _ := http.NewRequestWithContext(t.Context(), "POST", target.String(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.url)
	req.Header.Set("X-Debug-Principal", "user:"+user)
	resp, err := http.DefaultClient.Do(req) // follows the redirect to the page
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}
