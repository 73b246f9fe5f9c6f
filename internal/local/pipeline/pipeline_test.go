package pipeline_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/api"
	"github.com/jitpipeline/jit/internal/clock"
	evs "github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/iamcond"
	"github.com/jitpipeline/jit/internal/local/gcp/emulators"
	"github.com/jitpipeline/jit/internal/local/gcp/pushbridge"
	"github.com/jitpipeline/jit/internal/local/pipeline"
	"github.com/jitpipeline/jit/internal/local/world"
)

// speed is how much faster than real time the tests' clock runs: a PT1M
// grant lasts one real second, an approval window of PT20M twenty.
const speed = 60

// testPolicy is the demo policy with a short approval window: short enough
// for the expiry test, long enough that an approval made right after the
// request lands inside it on a loaded machine (2 s did not, under make test).
func testPolicy(t *testing.T) string {
	t.Helper()
	p := t.TempDir() + "/policy.yaml"
	doc := strings.Replace(string(pipeline.DemoPolicy()), "window: PT1H", "window: PT20M", 1)
	if err := writeFile(p, doc); err != nil {
		t.Fatal(err)
	}
	return p
}

type env struct {
	t   testing.TB
	p   *pipeline.Pipeline
	url string
}

func start(t *testing.T, cfg pipeline.Config) *env {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Scaled(time.Now(), speed)
	}
	if cfg.PolicyFile == "" {
		cfg.PolicyFile = testPolicy(t)
	}
	if cfg.RateLimit == nil {
		// The tests make many calls as one user; TestRateLimit checks the default.
		cfg.RateLimit = &api.RateLimit{Every: time.Millisecond, Burst: 10000}
	}
	if cfg.ActivationTimeout == 0 {
		// A day on the fast clock is 24 real minutes: IAM writes under
		// -race and 200 concurrent requests do not speed up with it.
		cfg.ActivationTimeout = 24 * time.Hour
	}
	p, err := pipeline.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return &env{t: t, p: p, url: p.URL}
}

// call makes an API call as a user and decodes the JSON answer.
func (e *env) call(method, path, user string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequestWithContext(e.t.Context(), method, e.url+path, rd)
	req.Header.Set("X-Debug-Principal", "user:"+user)
	if method != http.MethodGet {
		req.Header.Set("X-Requested-With", "test")
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out) //nolint:errcheck // checked by callers through the status
	return resp.StatusCode, out
}

func (e *env) request(user, entitlement, duration string) string {
	e.t.Helper()
	code, g := e.call("POST", "/v1/grants", user, map[string]any{"entitlement": entitlement, "requestedDuration": duration, "justification": "test " + e.t.Name()})
	if code != http.StatusCreated {
		e.t.Fatalf("request by %s: %d %v", user, code, g)
	}
	return g["id"].(string)
}

// waitState polls the grant until it is in want (real-time limit 60 s: under -race, with the other packages running, 200 activations take a while).
func (e *env) waitState(user, id string, want grant.State) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var g map[string]any
	for time.Now().Before(deadline) {
		_, g = e.call("GET", "/v1/grants/"+id, user, nil)
		if g["state"] == string(want) {
			return g
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("%s stayed %v, want %s; timeline %v", id, g["state"], want, g["timeline"])
	return nil
}

func (e *env) hasRole(user, role string) bool {
	e.t.Helper()
	ok, err := e.p.Cloud.IAM.HasRole(e.t.Context(), "user:"+user, role, "projects/demo-project", e.p.Clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return ok
}

func events(g map[string]any) []string {
	var out []string
	for _, raw := range g["timeline"].([]any) {
		e := raw.(map[string]any)
		out = append(out, fmt.Sprintf("%s %s", e["state"], strings.TrimSuffix(strings.TrimPrefix(e["event"].(string), "dev.jitpipeline.grant."), ".v1")))
	}
	return out
}

// The first acceptance, on a clock 60× faster than real time:
// alice's self-approved PT5M grant is ACTIVE at once with the docs/architecture.md §3
// binding, then ENDED with the binding gone and the removal verified.
func TestSelfApprovedGrantEndsOnTime(t *testing.T) {
	t.Parallel()
	e := start(t, pipeline.Config{})
	id := e.request("alice@example.com", "demo.demo-project.viewer", "PT5M")
	g := e.waitState("alice@example.com", id, grant.Active)
	if !e.hasRole("alice@example.com", "roles/compute.viewer") {
		t.Error("alice lacks the role while ACTIVE")
	}
	pol := e.p.Cloud.IAM.Policy("projects/demo-project")
	var found bool
	for _, b := range pol.GetBindings() {
		if b.GetRole() == "roles/compute.viewer" && b.GetCondition().GetTitle() == iamcond.ActivationTitle {
			start, _ := time.Parse(time.RFC3339, g["startTime"].(string))
			end, _ := time.Parse(time.RFC3339, g["endTime"].(string))
			if got, want := b.GetCondition().GetExpression(), iamcond.Activation(start, end, ""); got != want {
				t.Errorf("condition %q, want %q", got, want)
			}
			if end.Sub(start) != 5*time.Minute {
				t.Errorf("window %v", end.Sub(start))
			}
			found = true
		}
	}
	if !found {
		t.Fatalf("no JIT binding in %v", pol)
	}
	g = e.waitState("alice@example.com", id, grant.Ended)
	if e.hasRole("alice@example.com", "roles/compute.viewer") {
		t.Error("alice still holds the role after ENDED")
	}
	for _, b := range e.p.Cloud.IAM.Policy("projects/demo-project").GetBindings() {
		if b.GetCondition().GetTitle() == iamcond.ActivationTitle {
			t.Errorf("binding left after the end: %v", b)
		}
	}
	want := []string{"ACTIVATING requested", "ACTIVE activated", "ACTIVE revocation_verified", "ENDED ended"}
	if diff := cmp.Diff(want, events(g)); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	if g["revocationVerified"] != true {
		t.Error("revocation not verified")
	}
}

func TestApprovalFlows(t *testing.T) {
	t.Parallel()
	e := start(t, pipeline.Config{})
	const bob, carol = "bob@example.com", "carol@example.com"

	// Approved by carol; bob cannot approve his own.
	id := e.request(bob, "demo.demo-project.admin", "PT5M")
	e.waitState(bob, id, grant.ApprovalAwaited)
	if code, body := e.call("POST", "/v1/grants/"+id+":approve", bob, map[string]any{}); code != http.StatusForbidden {
		t.Errorf("bob approving his own: %d %v", code, body)
	}
	if code, body := e.call("GET", "/v1/grants?view=approvable", carol, nil); code != 200 || len(body["grants"].([]any)) != 1 {
		t.Errorf("carol's approvable: %d %v", code, body)
	}
	if code, body := e.call("POST", "/v1/grants/"+id+":approve", carol, map[string]any{"reason": "go ahead"}); code != 200 {
		t.Fatalf("carol approving: %d %v", code, body)
	}
	e.waitState(bob, id, grant.Active)
	if !e.hasRole(bob, "roles/compute.admin") {
		t.Error("bob lacks the role after approval")
	}
	// Withdrawn: access removed at once.
	if code, body := e.call("POST", "/v1/grants/"+id+":withdraw", bob, nil); code != 200 {
		t.Fatalf("withdraw: %d %v", code, body)
	}
	g := e.waitState(bob, id, grant.Withdrawn)
	if e.hasRole(bob, "roles/compute.admin") || g["revocationVerified"] != true {
		t.Errorf("after withdrawal: role %v, verified %v", e.hasRole(bob, "roles/compute.admin"), g["revocationVerified"])
	}

	// Denied, with the reason.
	id = e.request(bob, "demo.demo-project.admin", "PT5M")
	if code, body := e.call("POST", "/v1/grants/"+id+":deny", carol, map[string]any{"reason": "not during the freeze"}); code != 200 {
		t.Fatalf("deny: %d %v", code, body)
	}
	g = e.waitState(bob, id, grant.Denied)
	if d, _ := g["denial"].(map[string]any); d["reason"] != "not during the freeze" || d["approver"] != carol {
		t.Errorf("denial %v", g["denial"])
	}

	// Unanswered: EXPIRED after the PT20M window (20 s of real time).
	id = e.request(bob, "demo.demo-project.admin", "PT5M")
	g = e.waitState(bob, id, grant.Expired)
	if diff := cmp.Diff([]string{"APPROVAL_AWAITED requested", "EXPIRED expired"}, events(g)); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	if code, _ := e.call("POST", "/v1/grants/"+id+":approve", carol, nil); code != http.StatusConflict {
		t.Errorf("approving an expired request: %d", code)
	}
}

// Bad input: a 4xx naming the problem, and nothing written or emitted.
func TestBadRequestsChangeNothing(t *testing.T) {
	t.Parallel()
	e := start(t, pipeline.Config{})
	before := published(e)
	for _, tc := range []struct {
		name, user string
		body       any
		code       int
		field      string
	}{
		{"malformed JSON", "alice@example.com", `{"entitlement": "demo.demo-project.viewer",`, 400, ""},
		{"unknown field", "alice@example.com", map[string]any{"entitlement": "demo.demo-project.viewer", "requestedDuration": "PT1M", "justification": "x", "role": "roles/owner"}, 400, "role"},
		{"unknown entitlement", "alice@example.com", map[string]any{"entitlement": "demo.demo-project.owner", "requestedDuration": "PT1M", "justification": "x"}, 404, "entitlement"},
		{"duration outside the policy", "alice@example.com", map[string]any{"entitlement": "demo.demo-project.viewer", "requestedDuration": "PT3H", "justification": "x"}, 400, "requestedDuration"},
		{"not a duration", "alice@example.com", map[string]any{"entitlement": "demo.demo-project.viewer", "requestedDuration": "1 hour", "justification": "x"}, 400, "requestedDuration"},
		{"missing justification", "alice@example.com", map[string]any{"entitlement": "demo.demo-project.viewer", "requestedDuration": "PT1M"}, 400, "justification"},
		{"not allowed to request", "dave@example.com", map[string]any{"entitlement": "demo.demo-project.admin", "requestedDuration": "PT5M", "justification": "x"}, 403, "entitlement"},
		{"outsider", "mallory@evil.example", map[string]any{"entitlement": "demo.demo-project.viewer", "requestedDuration": "PT1M", "justification": "x"}, 403, "entitlement"},
	} {
		code, body := e.call("POST", "/v1/grants", tc.user, tc.body)
		errBody, _ := body["error"].(map[string]any)
		if code != tc.code || errBody["message"] == "" || (tc.field != "" && errBody["field"] != tc.field) {
			t.Errorf("%s: %d %v; want %d naming %q", tc.name, code, body, tc.code, tc.field)
		}
	}
	// Without X-Requested-With, or without a caller.
	req, _ := http.NewRequestWithContext(t.Context(), "POST", e.url+"/v1/grants", strings.NewReader(`{}`))
	req.Header.Set("X-Debug-Principal", "user:alice@example.com")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Errorf("missing X-Requested-With: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("missing X-Requested-With: %d, want 403", resp.StatusCode)
		}
	}
	resp, err := http.Get(e.url + "/v1/entitlements")
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no caller: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	for k, v := range api.SecurityHeaders {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	gs, err := e.p.Ledger.List(t.Context(), grant.Query{})
	if err != nil || len(gs) != 0 {
		t.Errorf("ledger after refusals: %d grants, %v", len(gs), err)
	}
	if after := published(e); after != before {
		t.Errorf("events published by refused requests: %d → %d", before, after)
	}
}

func published(e *env) int {
	if f := e.p.Cloud.PubSub.Fake(); f != nil {
		return len(f.Messages())
	}
	return -1
}

// The same events delivered twice, and out of order, change nothing more
// than once: every transition appears once in the timeline.
func TestDuplicateAndReorderedDelivery(t *testing.T) {
	t.Parallel()
	e := start(t, pipeline.Config{Chaos: pushbridge.Chaos{DuplicateEvery: 1, ReorderWindow: 3, Seed: 7}})
	self := e.request("alice@example.com", "demo.demo-project.viewer", "PT5M")
	asked := e.request("bob@example.com", "demo.demo-project.admin", "PT5M")
	e.waitState("bob@example.com", asked, grant.ApprovalAwaited)
	e.call("POST", "/v1/grants/"+asked+":approve", "carol@example.com", nil)
	// Bob's first: his grant may end soon after alice's on a loaded machine.
	g := e.waitState("bob@example.com", asked, grant.Active)
	if diff := cmp.Diff([]string{"APPROVAL_AWAITED requested", "ACTIVATING approved", "ACTIVE activated"}, events(g)); diff != "" {
		t.Errorf("bob's timeline (-want +got):\n%s", diff)
	}
	g = e.waitState("alice@example.com", self, grant.Ended)
	if diff := cmp.Diff([]string{"ACTIVATING requested", "ACTIVE activated", "ACTIVE revocation_verified", "ENDED ended"}, events(g)); diff != "" {
		t.Errorf("alice's timeline (-want +got):\n%s", diff)
	}
	st := e.p.Cloud.Bridge.Stats("projects/jit-local/subscriptions/grant")
	if st.Duplicated == 0 {
		t.Errorf("no duplicate deliveries happened: %+v", st)
	}
}

// 200 concurrent grants for different users on one project: all ACTIVE,
// all bindings present, none lost to etag conflicts; then 50 withdrawn
// concurrently and the other 150 ended by their time, all removed with the
// removal verified, and the unrelated binding untouched. Time stands still
// (a manual clock) while the grants activate, then jumps past their end.
func TestConcurrentGrants(t *testing.T) {
	if testing.Short() {
		t.Skip("200 grants; skipped with -short")
	}
	t.Parallel()
	const n = 200
	w := world.Default()
	var users []string
	for i := range n {
		u := fmt.Sprintf("user%03d@example.com", i)
		users = append(users, u)
		w.Users = append(w.Users, world.User{Email: u})
		w.Groups[0].Members = append(w.Groups[0].Members, "user:"+u) // sre
	}
	clk := clock.NewManual(time.Now())
	e := start(t, pipeline.Config{World: w, Clock: clk})
	unrelated := fmt.Sprint(bindingsOf(e, "roles/viewer"))
	writes0 := e.p.Cloud.IAM.WriteCount()
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() { ids[i] = e.request(u, "demo.demo-project.viewer", "PT2H") })
	}
	wg.Wait()
	for i, u := range users {
		e.waitState(u, ids[i], grant.Active)
	}
	for _, u := range users {
		if !e.hasRole(u, "roles/compute.viewer") {
			t.Errorf("%s lacks the role", u)
		}
	}
	t.Logf("200 activations took %d IAM writes (%d ABORTED answers retried)", e.p.Cloud.IAM.WriteCount()-writes0, e.p.Cloud.IAM.AbortedCount())

	for i, u := range users[:50] {
		wg.Go(func() {
			if code, body := e.call("POST", "/v1/grants/"+ids[i]+":withdraw", u, nil); code != 200 {
				t.Errorf("withdraw %s: %d %v", ids[i], code, body)
			}
		})
	}
	wg.Wait()
	for i, u := range users[:50] {
		e.waitState(u, ids[i], grant.Withdrawn)
	}
	clk.Advance(2*time.Hour + time.Minute) // past the end of the other 150
	for i, u := range users {
		want := grant.Ended
		if i < 50 {
			want = grant.Withdrawn
		}
		if g := e.waitState(u, ids[i], want); g["revocationVerified"] != true {
			t.Errorf("%s: revocation not verified", ids[i])
		}
		if e.hasRole(u, "roles/compute.viewer") {
			t.Errorf("%s still holds the role", u)
		}
	}
	if got := fmt.Sprint(bindingsOf(e, "roles/viewer")); got != unrelated {
		t.Errorf("unrelated binding changed: %s → %s", unrelated, got)
	}
	for _, b := range e.p.Cloud.IAM.Policy("projects/demo-project").GetBindings() {
		if b.GetRole() == "roles/compute.viewer" {
			t.Errorf("binding left behind: %v", b)
		}
	}
}

func bindingsOf(e *env, role string) []string {
	var out []string
	for _, b := range e.p.Cloud.IAM.Policy("projects/demo-project").GetBindings() {
		if b.GetRole() == role {
			out = append(out, fmt.Sprint(b.GetMembers(), b.GetCondition()))
		}
	}
	return out
}

// The pipeline with Google's Pub/Sub emulator in place of pstest: the same
// self-approved lifecycle, end to end.
func TestWithPubSubEmulator(t *testing.T) {
	t.Parallel()
	host := emulators.PubSub(t, pipeline.Project)
	e := start(t, pipeline.Config{PubSubEmulatorHost: host})
	id := e.request("alice@example.com", "demo.demo-project.viewer", "PT5M")
	e.waitState("alice@example.com", id, grant.Active)
	g := e.waitState("alice@example.com", id, grant.Ended)
	if diff := cmp.Diff([]string{"ACTIVATING requested", "ACTIVE activated", "ACTIVE revocation_verified", "ENDED ended"}, events(g)); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
}

// The same event delivered three times changes nothing more than once:
// after a grant has ended, its grant.requested (with its own event ID) and
// a revoke command are published three times each; the timeline, the
// policy and the number of workflow executions stay as they were.
func TestSameEventThreeTimes(t *testing.T) {
	t.Parallel()
	e := start(t, pipeline.Config{})
	id := e.request("alice@example.com", "demo.demo-project.viewer", "PT5M")
	before := e.waitState("alice@example.com", id, grant.Ended)
	g, err := e.p.Ledger.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	policyBefore := fmt.Sprint(e.p.Cloud.IAM.Policy("projects/demo-project").GetBindings())
	ps, err := e.p.Cloud.PubSub.NewClient(t.Context(), pipeline.Project)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	pub := evs.NewPublisher(ps, pipeline.Topic)
	defer pub.Stop()
	requested, err := evs.FromGrantEntry(g, g.Timeline[0])
	if err != nil {
		t.Fatal(err)
	}
	revoke, err := evs.New(evs.TypeRevokeRequested, id+"-again", e.p.Clock.Now(), evs.Data{
		GrantID: id, Entitlement: g.Entitlement, Requester: g.Requester, State: grant.Active, Reason: "end",
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		for _, ev := range []cloudevents.Event{requested, revoke} {
			if _, err := pub.Publish(t.Context(), ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Wait until all six deliveries were handled by their functions.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		s1 := e.p.Cloud.Bridge.Stats("projects/jit-local/subscriptions/revoke")
		s2 := e.p.Cloud.Bridge.Stats("projects/jit-local/subscriptions/eventarc-grant-lifecycle")
		if s1.Acked >= 4 && s2.Acked >= 4 { // the grant's own plus three each
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // duplicate executions asking for activation get DUPLICATE
	_, after := e.call("GET", "/v1/grants/"+id, "alice@example.com", nil)
	if diff := cmp.Diff(events(before), events(after)); diff != "" {
		t.Errorf("timeline changed by redelivery (-before +after):\n%s", diff)
	}
	if got := fmt.Sprint(e.p.Cloud.IAM.Policy("projects/demo-project").GetBindings()); got != policyBefore {
		t.Errorf("policy changed by redelivery:\n%s\n→\n%s", policyBefore, got)
	}
	if hasRole := e.hasRole("alice@example.com", "roles/compute.viewer"); hasRole {
		t.Error("redelivery granted the role again")
	}
}

// An administrator with RECONCILE revokes an active grant: REVOKED, the
// access removed and verified. Without RECONCILE — the requester, an
// approver, anyone else — it is refused and nothing changes.
func TestAdminRevoke(t *testing.T) {
	t.Parallel()
	e := start(t, pipeline.Config{})
	const bob = "bob@example.com"
	id := e.request(bob, "demo.demo-project.admin", "PT5M")
	e.waitState(bob, id, grant.ApprovalAwaited)
	if code, body := e.call("POST", "/v1/grants/"+id+":revoke", "grace@example.com", nil); code != http.StatusConflict {
		t.Errorf("revoking a request that is not active: %d %v", code, body)
	}
	if code, body := e.call("POST", "/v1/grants/"+id+":approve", "carol@example.com", nil); code != 200 {
		t.Fatalf("carol approving: %d %v", code, body)
	}
	e.waitState(bob, id, grant.Active)
	for _, who := range []string{bob, "carol@example.com", "alice@example.com"} {
		if code, body := e.call("POST", "/v1/grants/"+id+":revoke", who, map[string]any{"reason": "x"}); code != http.StatusForbidden && code != http.StatusNotFound {
			t.Errorf("%s revoking: %d %v", who, code, body)
		}
	}
	if _, g := e.call("GET", "/v1/grants/"+id, bob, nil); g["state"] != string(grant.Active) || !e.hasRole(bob, "roles/compute.admin") {
		t.Fatalf("refused revocations changed the grant: %v", g["state"])
	}
	if code, body := e.call("POST", "/v1/grants/"+id+":revoke", "grace@example.com", map[string]any{"reason": "incident over"}); code != 200 {
		t.Fatalf("grace revoking: %d %v", code, body)
	}
	g := e.waitState(bob, id, grant.Revoked)
	if e.hasRole(bob, "roles/compute.admin") || g["revocationVerified"] != true {
		t.Errorf("after revocation: role %v, verified %v", e.hasRole(bob, "roles/compute.admin"), g["revocationVerified"])
	}
	want := []string{"APPROVAL_AWAITED requested", "ACTIVATING approved", "ACTIVE activated", "REVOKING revoking", "REVOKING revocation_verified", "REVOKED revoked"}
	if diff := cmp.Diff(want, events(g)); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
}

// Each caller's changing calls are rate-limited (the calls that will send
// mail): a burst of 10, then 429 with Retry-After, while other callers go
// on. Refused calls change nothing.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := start(t, pipeline.Config{RateLimit: &api.DefaultRateLimit})
	bad := map[string]any{"entitlement": "demo.demo-project.viewer", "requestedDuration": "P1D", "justification": "x"}
	for i := range api.DefaultRateLimit.Burst {
		if code, body := e.call("POST", "/v1/grants", "alice@example.com", bad); code != 400 {
			t.Fatalf("call %d: %d %v", i, code, body)
		}
	}
	before := published(e)
	if code, body := e.call("POST", "/v1/grants", "alice@example.com", map[string]any{"entitlement": "demo.demo-project.viewer", "requestedDuration": "PT1M", "justification": "x"}); code != 429 {
		t.Errorf("call past the burst: %d %v", code, body)
	}
	if code, _ := e.call("POST", "/v1/grants", "carol@example.com", bad); code != 400 {
		t.Errorf("another caller was limited too: %d", code)
	}
	if code, _ := e.call("GET", "/v1/entitlements", "alice@example.com", nil); code != 200 {
		t.Errorf("reads are not limited: %d", code)
	}
	gs, _ := e.p.Ledger.List(t.Context(), grant.Query{})
	if len(gs) != 0 || published(e) != before {
		t.Errorf("refused calls changed state: %d grants, events %d → %d", len(gs), before, published(e))
	}
}

// The local mail server is up and its mailbox is served at /local/mail
// (empty until the notifications send to it).
func TestMailboxServed(t *testing.T) {
	t.Parallel()
	e := start(t, pipeline.Config{})
	resp, err := http.Get(e.url + "/local/mail?format=json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /local/mail: %d %v", resp.StatusCode, err)
	}
	if body.Messages == nil || e.p.Mailbox.Addr() == "" {
		t.Errorf("mailbox: messages %v, SMTP address %q", body.Messages, e.p.Mailbox.Addr())
	}
}
