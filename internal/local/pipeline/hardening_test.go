package pipeline_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/workflows/executions/apiv1/executionspb"
	"google.golang.org/genproto/googleapis/type/expr"

	"github.com/jitpipeline/jit/internal/api"
	"github.com/jitpipeline/jit/internal/clock"
	evs "github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/iamcond"
	"github.com/jitpipeline/jit/internal/lifecycle"
	"github.com/jitpipeline/jit/internal/local/pipeline"
)

// The tests of this file each show one defect found from outside (issue
// 8) fixed, through the embedded pipeline's HTTP surface and the real
// client libraries against the local fakes.

// policyWith is the test policy with each old→new replacement made once.
func policyWith(t *testing.T, pairs ...string) string {
	t.Helper()
	p := testPolicy(t)
	doc, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("policy has no %q", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	if err := writeFile(p, s); err != nil {
		t.Fatal(err)
	}
	return p
}

// editPolicy rewrites the running pipeline's policy file and reloads it.
func (e *env) editPolicy(path string, pairs ...string) {
	e.t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		e.t.Fatal(err)
	}
	s := string(doc)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			e.t.Fatalf("policy has no %q", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	if err := writeFile(path, s); err != nil {
		e.t.Fatal(err)
	}
	if err := e.p.Policy.Reload(e.t.Context()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) grant(id string) *grant.Grant {
	e.t.Helper()
	g, err := e.p.Ledger.Get(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return g
}

// Commands travel on Pub/Sub, where anyone allowed to publish can write
// any callback URL. Forged approval.requested and activation.requested
// naming a foreign server — or a real runner URL of an execution that
// does not run the grant — make no function call out: the foreign server
// sees no request at all, and the grants complete through their real
// executions.
func TestForgedCommandsSendNothingAway(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		t.Errorf("a function called the foreign URL %s with Authorization %q", r.URL, r.Header.Get("Authorization"))
	}))
	defer foreign.Close()
	e := start(t, pipeline.Config{Clock: clock.Real()})
	pending := e.request("bob@example.com", "demo.demo-project.admin", "PT5M")
	e.waitState("bob@example.com", pending, grant.ApprovalAwaited)
	self := e.request("alice@example.com", "demo.demo-project.viewer", "PT5M")

	ps, err := e.p.Cloud.PubSub.NewClient(t.Context(), pipeline.Project)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	runner := e.url + "/v1/projects/" + pipeline.Project + "/locations/" + pipeline.Location + "/workflows/" + pipeline.Workflow
	urls := []string{
		foreign.URL + "/v1/projects/jit-local/locations/us-central1/workflows/grant-lifecycle/executions/x/callbacks/y",
		foreign.URL + "/steal",
		runner + "/executions/not-an-execution/callbacks/cb",
		e.url + "/v1/projects/jit-local/locations/us-central1/workflows/grant-lifecycle/executions/x/callbacks/y@" + strings.TrimPrefix(foreign.URL, "http://"),
	}
	n := 0
	for _, cmd := range []struct{ topic, typ, id string }{
		{pipeline.ApprovalTopic, evs.TypeApprovalRequested, pending},
		{pipeline.ActivationTopic, evs.TypeActivationRequested, self},
		{pipeline.ActivationTopic, evs.TypeActivationRequested, pending},
	} {
		pub := evs.NewPublisher(ps, cmd.topic)
		g := e.grant(cmd.id)
		for _, u := range urls {
			n++
			d := evs.Data{
				GrantID: g.ID, Entitlement: g.Entitlement, Requester: g.Requester, State: grant.ApprovalAwaited,
				CallbackURL: u,
			}
			if cmd.typ == evs.TypeActivationRequested {
				d.EndCallbackURL, d.State = u, grant.Activating
			}
			ev, err := evs.New(cmd.typ, fmt.Sprintf("forged-%d", n), time.Now(), d)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pub.Publish(t.Context(), ev); err != nil {
				t.Fatal(err)
			}
		}
		pub.Stop()
	}
	e.waitState("alice@example.com", self, grant.Active)
	if code, body := e.call("POST", "/v1/grants/"+pending+":approve", "carol@example.com", nil); code != 200 {
		t.Fatalf("approval: %d %v", code, body)
	}
	e.waitState("bob@example.com", pending, grant.Active)
	time.Sleep(500 * time.Millisecond) // any late forged delivery
	if n := hits.Load(); n != 0 {
		t.Errorf("%d requests reached the foreign server", n)
	}
	if g := e.grant(self); !strings.Contains(g.Execution, "") || g.Execution == "not-an-execution" {
		t.Errorf("alice's grant claimed by execution %q", g.Execution)
	}
}

// The concurrency constraint holds under a race: 20 simultaneous requests
// against max 1 leave exactly one accepted; 20 simultaneous approvals of
// requests against max 5 leave exactly five granted.
func TestConcurrencyLimitCannotBeRaced(t *testing.T) {
	t.Parallel()
	pol := policyWith(t, "              - {type: expiry, min: PT1M, max: PT2H}\n",
		"              - {type: expiry, min: PT1M, max: PT2H}\n              - {type: concurrency, max: 1}\n")
	e := start(t, pipeline.Config{Clock: clock.Real(), PolicyFile: pol})

	codes := race(20, func(i int) int {
		code, _ := e.call("POST", "/v1/grants", "alice@example.com", map[string]any{
			"entitlement": "demo.demo-project.viewer", "requestedDuration": "PT1H", "justification": fmt.Sprintf("race %d", i)})
		return code
	})
	if codes[http.StatusCreated] != 1 {
		t.Errorf("concurrent requests against max 1: %v, want exactly one 201", codes)
	}

	var pending []string
	for i := range 20 {
		who := []string{"alice@example.com", "bob@example.com"}[i%2]
		id := e.request(who, "demo.demo-project.admin", "PT1H")
		pending = append(pending, id)
	}
	for i, id := range pending {
		e.waitState([]string{"alice@example.com", "bob@example.com"}[i%2], id, grant.ApprovalAwaited)
	}
	codes = race(20, func(i int) int {
		code, _ := e.call("POST", "/v1/grants/"+pending[i]+":approve", "erin@example.com", nil)
		return code
	})
	if codes[http.StatusOK] != 5 {
		t.Errorf("concurrent approvals against max 5: %v, want exactly five 200", codes)
	}
	granted := 0
	for _, id := range pending {
		if g := e.grant(id); g.State.HoldsSlot() {
			granted++
		}
	}
	if granted != 5 {
		t.Errorf("%d grants hold a slot of the admin entitlement, want 5", granted)
	}
}

// race runs f(0..n-1) at once and counts the statuses.
func race(n int, f func(i int) int) map[int]int {
	var mu sync.Mutex
	counts := map[int]int{}
	var ready, done sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-gate
			code := f(i)
			mu.Lock()
			counts[code]++
			mu.Unlock()
		}()
	}
	ready.Wait()
	close(gate)
	done.Wait()
	return counts
}

// An approval is decided on the policy in force: a requester whom the new
// policy denies JOIN is not granted (409), nor is a request whose
// entitlement now grants other privileges than were asked for (409: the
// approver would approve what nobody saw). Neither changes the request.
func TestApprovalRechecksThePolicy(t *testing.T) {
	t.Parallel()
	pol := testPolicy(t)
	e := start(t, pipeline.Config{Clock: clock.Real(), PolicyFile: pol})
	lost := e.request("bob@example.com", "demo.demo-project.admin", "PT5M")
	changed := e.request("alice@example.com", "demo.demo-project.admin", "PT5M")
	e.waitState("bob@example.com", lost, grant.ApprovalAwaited)
	e.waitState("alice@example.com", changed, grant.ApprovalAwaited)

	e.editPolicy(pol, `            - {principal: "group:sre@example.com", allow: "JOIN"}`,
		`            - {principal: "group:sre@example.com", allow: "JOIN"}
            - {principal: "user:bob@example.com", deny: "JOIN"}`)
	if code, body := e.call("POST", "/v1/grants/"+lost+":approve", "carol@example.com", nil); code != http.StatusConflict {
		t.Errorf("approving for a requester who lost JOIN: %d %v", code, body)
	}
	if g := e.grant(lost); g.State != grant.ApprovalAwaited || len(g.Decisions) != 0 {
		t.Errorf("refused approval changed the request: %s, decisions %+v", g.State, g.Decisions)
	}

	e.editPolicy(pol, "role: roles/compute.admin", "role: roles/owner")
	if code, body := e.call("POST", "/v1/grants/"+changed+":approve", "carol@example.com", nil); code != http.StatusConflict {
		t.Errorf("approving a request whose privileges changed: %d %v", code, body)
	}
	if g := e.grant(changed); g.State != grant.ApprovalAwaited || len(g.Decisions) != 0 {
		t.Errorf("request is %s, decisions %+v", g.State, g.Decisions)
	}
	if e.hasRole("alice@example.com", "roles/owner") || e.hasRole("bob@example.com", "roles/compute.admin") {
		t.Error("a refused approval granted a role")
	}
}

// An activation that fails after a binding was written (the second
// resource does not exist) ends ACTIVATION_FAILED with the written binding
// removed and the removal verified; nothing of it is left in IAM.
func TestFailedActivationLeavesNoBinding(t *testing.T) {
	t.Parallel()
	pol := policyWith(t, "              - {resource: projects/demo-project, role: roles/compute.viewer}\n",
		"              - {resource: projects/demo-project, role: roles/compute.viewer}\n              - {resource: projects/zz-missing-project, role: roles/compute.viewer}\n")
	e := start(t, pipeline.Config{Clock: clock.Real(), PolicyFile: pol})
	id := e.request("alice@example.com", "demo.demo-project.viewer", "PT5M")
	deadline := time.Now().Add(20 * time.Second)
	var g *grant.Grant
	for ; time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if g = e.grant(id); g.State == grant.ActivationFailed && !g.MayHoldAccess() {
			break
		}
	}
	if g.State != grant.ActivationFailed || g.MayHoldAccess() {
		t.Fatalf("grant is %s (may hold access: %v); timeline %+v", g.State, g.MayHoldAccess(), g.Timeline)
	}
	if e.hasRole("alice@example.com", "roles/compute.viewer") {
		t.Error("alice keeps the role of a failed activation")
	}
	for _, b := range e.p.Cloud.IAM.Policy("projects/demo-project").GetBindings() {
		if b.GetCondition().GetTitle() == iamcond.ActivationTitle {
			t.Errorf("binding left: %v", b)
		}
	}
	var verified bool
	for _, en := range g.Timeline {
		verified = verified || en.EventType == evs.TypeRevocationVerified
	}
	if !verified {
		t.Errorf("no verified removal in the timeline: %+v", g.Timeline)
	}
}

// A revocation task delivered before its grant ends answers non-2xx
// (503, Retry-After) so that Cloud Tasks delivers it again, and the grant
// stays ACTIVE with its backstop task still queued.
func TestEarlyRevocationTaskIsRetried(t *testing.T) {
	t.Parallel()
	e := start(t, pipeline.Config{Clock: clock.Real()})
	id := e.request("alice@example.com", "demo.demo-project.viewer", "PT1H")
	e.waitState("alice@example.com", id, grant.Active)
	path := "/functions/revoke-task"
	tok, err := e.p.Cloud.Signer.IDToken(pipeline.TasksSA, e.url+path)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "POST", e.url+path, strings.NewReader(fmt.Sprintf(`{"grantId":%q,"scheduleTime":%q}`, id, e.grant(id).EndTime.Format(time.RFC3339))))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 300 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("early delivery answered %d (Retry-After %q), want non-2xx with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if g := e.grant(id); g.State != grant.Active || !e.hasRole("alice@example.com", "roles/compute.viewer") {
		t.Errorf("early task changed the grant: %s", g.State)
	}
	tasks, err := e.p.Cloud.Tasks.ListTasks(t.Context(), &cloudtaskspb.ListTasksRequest{Parent: "projects/" + pipeline.Project + "/locations/" + pipeline.Location + "/queues/" + pipeline.Queue})
	if err != nil {
		t.Fatal(err)
	}
	var queued int
	for _, task := range tasks.GetTasks() {
		if strings.Contains(task.GetName(), id) {
			queued++
		}
	}
	if queued == 0 {
		t.Error("no revocation task is queued for the active grant")
	}
}

// The sweep entry point (Cloud Scheduler's identity only) purges expired
// JIT bindings from resources that get no new grant: 30 of 30 go.
func TestSweepPurgesExpiredBindings(t *testing.T) {
	t.Parallel()
	e := start(t, pipeline.Config{Clock: clock.Real(), SweepInterval: -1})
	const res = "projects/demo-project"
	pol := e.p.Cloud.IAM.Policy(res)
	pol.Version = 3 // conditions need it (docs/google-cloud.md §1)
	ended := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for i := range 30 {
		pol.Bindings = append(pol.Bindings, &iampb.Binding{
			Role:    "roles/compute.viewer",
			Members: []string{fmt.Sprintf("user:former-%d@example.com", i)},
			Condition: &expr.Expr{Title: iamcond.ActivationTitle,
				Expression: iamcond.Activation(ended.Add(-time.Hour), ended.Add(time.Duration(i)*time.Second), "")},
		})
	}
	if _, err := e.p.Cloud.IAM.SetPolicy(res, pol); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		n := 0
		for _, b := range e.p.Cloud.IAM.Policy(res).GetBindings() {
			if b.GetCondition().GetTitle() == iamcond.ActivationTitle {
				n++
			}
		}
		return n
	}
	if n := count(); n != 30 {
		t.Fatalf("seeded %d expired bindings", n)
	}
	sweep := func(sa string) int {
		tok, err := e.p.Cloud.Signer.IDToken(sa, e.url+"/functions/sweep")
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(t.Context(), "POST", e.url+"/functions/sweep", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := sweep(pipeline.TasksSA); code != http.StatusForbidden {
		t.Errorf("sweep by another service account: %d, want 403", code)
	}
	if n := count(); n != 30 {
		t.Errorf("a refused sweep purged: %d left", n)
	}
	if code := sweep(pipeline.SchedulerSA); code/100 != 2 {
		t.Errorf("sweep by the scheduler: %d", code)
	}
	if n := count(); n != 0 {
		t.Errorf("%d of 30 expired bindings left after the sweep", n)
	}
}

// Local mode answers only to its own name: a page whose DNS name an
// attacker re-points at 127.0.0.1 (DNS rebinding) sends its own Host, and
// a changing call from another origin carries its Origin.
func TestHostAndOriginChecked(t *testing.T) {
	t.Parallel()
	e := start(t, pipeline.Config{})
	body := `{"entitlement":"demo.demo-project.viewer","requestedDuration":"PT5M","justification":"rebinding"}`
	port := e.url[strings.LastIndex(e.url, ":"):]
	for _, tc := range []struct {
		name, host, origin string
		want               int
		site               string // Sec-Fetch-Site
	}{
		{"rebound name", "attacker.example" + port, "", 403, ""},
		{"rebound name without port", "attacker.example", "", 403, ""},
		{"foreign origin", "", "http://attacker.example" + port, 403, ""},
		{"null origin", "", "null", 403, ""},
		{"null origin from another site", "", "null", 403, "cross-site"},
		{"null origin of a no-referrer page here", "", "null", 201, "same-origin"},
		{"https origin of another port", "", "https://127.0.0.1" + port, 403, ""},
		{"localhost", "localhost" + port, "", 201, ""},
		{"same origin", "", "http://127.0.0.1" + port, 201, ""},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", e.url+"/v1/grants", strings.NewReader(body))
		req.Header.Set("X-Debug-Principal", "user:alice@example.com")
		req.Header.Set("X-Requested-With", "test")
		req.Header.Set("Content-Type", "application/json")
		if tc.host != "" {
			req.Host = tc.host
		}
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		if tc.site != "" {
			req.Header.Set("Sec-Fetch-Site", tc.site)
		}
		before := len(e.list())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
		if after := len(e.list()); tc.want != 201 && after != before {
			t.Errorf("%s: a refused call stored a grant", tc.name)
		}
	}
}

func (e *env) list() []*grant.Grant {
	e.t.Helper()
	gs, err := e.p.Ledger.List(e.t.Context(), grant.Query{})
	if err != nil {
		e.t.Fatal(err)
	}
	return gs
}

// One justification: the value the policy's expression checks is the one
// the grant records. An inputs.justification that differs from the
// justification is refused; surrounding space is no difference (both are
// trimmed, and the trimmed text is what is checked and recorded).
func TestJustificationIsOneValue(t *testing.T) {
	t.Parallel()
	pol := policyWith(t, "              - {type: expiry, min: PT1M, max: PT2H}\n",
		`              - {type: expiry, min: PT1M, max: PT2H}
              - type: expression
                name: ticket
                displayName: A ticket
                expression: "input.justification.startsWith('INC-')"
                variables:
                  - {type: string, name: justification, displayName: Justification}
`)
	e := start(t, pipeline.Config{PolicyFile: pol})
	for _, tc := range []struct {
		name   string
		body   map[string]any
		want   int
		stored string
	}{
		{"checked value differs", map[string]any{"justification": "just because", "inputs": map[string]any{"justification": "INC-1"}}, 400, ""},
		{"differs by space", map[string]any{"justification": "INC-1", "inputs": map[string]any{"justification": " INC-1 "}}, 201, "INC-1"},
		{"fails the check", map[string]any{"justification": "just because"}, 400, ""},
		{"the same value", map[string]any{"justification": "INC-2 paged", "inputs": map[string]any{"justification": "INC-2 paged"}}, 201, "INC-2 paged"},
		{"justification only", map[string]any{"justification": "INC-3 paged"}, 201, "INC-3 paged"},
	} {
		tc.body["entitlement"], tc.body["requestedDuration"] = "demo.demo-project.viewer", "PT5M"
		code, g := e.call("POST", "/v1/grants", "alice@example.com", tc.body)
		if code != tc.want {
			t.Errorf("%s: %d %v, want %d", tc.name, code, g, tc.want)
			continue
		}
		if tc.want == 201 {
			if got := e.grant(g["id"].(string)); got.Justification != tc.stored || fmt.Sprint(got.Inputs["justification"]) != tc.stored {
				t.Errorf("%s: recorded %q, checked %v", tc.name, got.Justification, got.Inputs["justification"])
			}
		}
	}
}

// syncBuffer is a log sink the pipeline's goroutines share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// One audit line per transition, however many functions touch the grant
// and however often events are delivered: ended, withdrawn and revoked
// each once, in local mode; and a refused call has its audit line too.
func TestAuditOncePerTransition(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	e := start(t, pipeline.Config{Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ended := e.request("alice@example.com", "demo.demo-project.viewer", "PT5M")
	withdrawn := e.request("carol@example.com", "demo.demo-project.viewer", "PT1H")
	revoked := e.request("dave@example.com", "demo.demo-project.viewer", "PT1H")
	e.waitState("carol@example.com", withdrawn, grant.Active)
	e.waitState("dave@example.com", revoked, grant.Active)
	if code, body := e.call("POST", "/v1/grants/"+withdrawn+":withdraw", "carol@example.com", map[string]any{"reason": "done"}); code != 200 {
		t.Fatalf("withdraw: %d %v", code, body)
	}
	if code, body := e.call("POST", "/v1/grants/"+revoked+":revoke", "grace@example.com", map[string]any{"reason": "incident over"}); code != 200 {
		t.Fatalf("revoke: %d %v", code, body)
	}
	if code, _ := e.call("POST", "/v1/grants/"+revoked+":revoke", "dave@example.com", map[string]any{"reason": "mine"}); code/100 != 4 {
		t.Fatalf("a revoke without RECONCILE answered %d", code)
	}
	e.waitState("alice@example.com", ended, grant.Ended)
	e.waitState("carol@example.com", withdrawn, grant.Withdrawn)
	e.waitState("dave@example.com", revoked, grant.Revoked)
	time.Sleep(time.Second) // late redeliveries would log now

	lines := map[string]int{} // event ID → audit lines
	refused := 0
	for _, raw := range strings.Split(buf.String(), "\n") {
		var line struct {
			Labels map[string]string `json:"logging.googleapis.com/labels"`
		}
		if json.Unmarshal([]byte(raw), &line) != nil || line.Labels["event/type"] != "audit" {
			continue
		}
		if line.Labels["event/id"] == "api.call" {
			if line.Labels["status"] == "403" || line.Labels["status"] == "404" {
				refused++
			}
			continue
		}
		lines[line.Labels["event_id"]]++
	}
	want := map[string]grant.State{ended: grant.Ended, withdrawn: grant.Withdrawn, revoked: grant.Revoked}
	for id, final := range want {
		g := e.grant(id)
		if g.State != final {
			t.Errorf("%s is %s", id, g.State)
		}
		for _, en := range g.Timeline {
			if n := lines[en.EventID]; n != 1 {
				t.Errorf("%s %s (%s): %d audit lines, want 1", id, en.EventType, en.EventID, n)
			}
		}
	}
	if refused != 1 {
		t.Errorf("%d audit lines of refused calls, want 1", refused)
	}
}

// Text people read must say what it looks like: a justification or reason
// that is blank-looking, reorders what is shown, forges a line or is too
// long is refused with 400 naming the field, and changes nothing.
func TestUserTextRefused(t *testing.T) {
	t.Parallel()
	e := start(t, pipeline.Config{})
	const bob, carol, grace = "bob@example.com", "carol@example.com", "grace@example.com"
	before := published(e)
	for _, tc := range []struct{ name, text string }{
		{"zero-width spaces", "\u200b\u200b\u200b"},
		{"hangul fillers", "\u3164\u3164"},
		{"no-break spaces", "\u00a0\u3000"},
		{"right-to-left override", "routine check \u202eosic@example.com yb devorppA"},
		{"carriage return forging a line", "routine\rApproved by ciso@example.com"},
		{"escape sequence", "ok\x1b[1A\x1b[2Kapproved"},
		{"too long", strings.Repeat("x", lifecycle.MaxJustification+1)},
	} {
		code, body := e.call("POST", "/v1/grants", "alice@example.com", map[string]any{
			"entitlement": "demo.demo-project.viewer", "requestedDuration": "PT5M", "justification": tc.text,
		})
		errBody, _ := body["error"].(map[string]any)
		if code != http.StatusBadRequest || errBody["field"] != "justification" {
			t.Errorf("justification %s: %d %v, want 400 naming justification", tc.name, code, body)
		}
	}
	if gs := e.list(); len(gs) != 0 || published(e) != before {
		t.Fatalf("refused requests wrote %d grants, published %d events", len(gs), published(e)-before)
	}

	// Reasons: deny, approve and admin revoke, each bounded and checked.
	pending := e.request(bob, "demo.demo-project.admin", "PT5M")
	e.waitState(bob, pending, grant.ApprovalAwaited)
	for _, tc := range []struct {
		name, verb, who, reason string
	}{
		{"blank deny reason", "deny", carol, "\u2800"},
		{"deny reason with bidi", "deny", carol, "policy \u2067violation\u2069"},
		{"approve reason too long", "approve", carol, strings.Repeat("y", lifecycle.MaxReason+1)},
		{"revoke reason with a BOM", "revoke", grace, "\ufeffdone"},
	} {
		code, body := e.call("POST", "/v1/grants/"+pending+":"+tc.verb, tc.who, map[string]any{"reason": tc.reason})
		errBody, _ := body["error"].(map[string]any)
		if code != http.StatusBadRequest || errBody["field"] != "reason" {
			t.Errorf("%s: %d %v, want 400 naming reason", tc.name, code, body)
		}
	}
	if g := e.grant(pending); g.State != grant.ApprovalAwaited {
		t.Errorf("refused decisions changed the request: %s", g.State)
	}
	// A reason of exactly the limit, with line breaks from a form, is fine.
	ok := strings.Repeat("z", lifecycle.MaxReason-2) + "\r\nz"
	if code, body := e.call("POST", "/v1/grants/"+pending+":deny", carol, map[string]any{"reason": ok}); code != 200 {
		t.Fatalf("deny with a reason of %d characters: %d %v", lifecycle.MaxReason, code, body)
	}
	if g := e.waitState(bob, pending, grant.Denied); g["denial"].(map[string]any)["reason"] != strings.Repeat("z", lifecycle.MaxReason-2)+"\nz" {
		t.Errorf("denial reason stored as %q", g["denial"].(map[string]any)["reason"])
	}
}

// A caller's rate limit is keyed by the one canonical form of their
// address: spelling it in other letter cases shares the caller's burst, and
// look-alike spellings (no-break space, ideographic space, NEL, dotted
// capital I, a zero-width space) are not that caller at all — 401, and
// nobody's budget. Before, a principal variant got 30 requests through a
// burst of 10.
func TestRateLimitKeyedByCanonicalIdentity(t *testing.T) {
	t.Parallel()
	e := start(t, pipeline.Config{RateLimit: &api.DefaultRateLimit})
	bad := map[string]any{"entitlement": "demo.demo-project.viewer", "requestedDuration": "P1D", "justification": "x"}
	spellings := []string{"alice@example.com", "ALICE@example.com", "Alice@Example.COM", "alice@EXAMPLE.com"}
	for i := range api.DefaultRateLimit.Burst {
		who := spellings[i%len(spellings)]
		if code, body := e.call("POST", "/v1/grants", who, bad); code != 400 {
			t.Fatalf("call %d as %s: %d %v", i, who, code, body)
		}
	}
	for _, who := range spellings {
		if code, body := e.call("POST", "/v1/grants", who, bad); code != 429 {
			t.Errorf("%s past alice's burst: %d %v, want 429", who, code, body)
		}
	}
	for _, who := range []string{
		"alice@example.com\u00a0", "alice\u3000@example.com", "alice@example.com\u0085",
		"al\u0130ce@example.com", "alice\u200b@example.com", " alice@example.com",
	} {
		for range 3 {
			if code, body := e.call("POST", "/v1/grants", who, bad); code != http.StatusUnauthorized {
				t.Errorf("%q: %d %v, want 401", who, code, body)
			}
		}
	}
	// Another caller still has a budget of their own.
	if code, _ := e.call("POST", "/v1/grants", "carol@example.com", bad); code != 400 {
		t.Errorf("carol was limited by alice's calls: %d", code)
	}
}

// Eventarc Pub/Sub triggers cannot filter on message attributes, so every
// message on a trigger's topic starts its target. Each topic therefore
// carries one kind of message, the one its target is for; the events
// topic (the audit trail) starts nothing of ours; and a stray event on the
// workflow's topic starts an execution that ends at once ("ignored"),
// sending nothing.
func TestEachTopicStartsOneThing(t *testing.T) {
	t.Parallel()
	e := start(t, pipeline.Config{})
	f := e.p.Cloud.PubSub.Fake()
	if f == nil {
		t.Skip("needs the in-process Pub/Sub fake")
	}
	const bob, carol = "bob@example.com", "carol@example.com"
	ended := e.request("alice@example.com", "demo.demo-project.viewer", "PT5M")
	withdrawn := e.request(bob, "demo.demo-project.admin", "PT5M")
	denied := e.request(bob, "demo.demo-project.admin", "PT5M")
	e.waitState(bob, withdrawn, grant.ApprovalAwaited)
	e.waitState(bob, denied, grant.ApprovalAwaited)
	if code, body := e.call("POST", "/v1/grants/"+withdrawn+":approve", carol, nil); code != 200 {
		t.Fatalf("approve: %d %v", code, body)
	}
	if code, body := e.call("POST", "/v1/grants/"+denied+":deny", carol, map[string]any{"reason": "not now"}); code != 200 {
		t.Fatalf("deny: %d %v", code, body)
	}
	e.waitState(bob, withdrawn, grant.Active)
	if code, body := e.call("POST", "/v1/grants/"+withdrawn+":withdraw", bob, nil); code != 200 {
		t.Fatalf("withdraw: %d %v", code, body)
	}
	e.waitState(bob, withdrawn, grant.Withdrawn)
	e.waitState(bob, denied, grant.Denied)
	e.waitState("alice@example.com", ended, grant.Ended)

	// A stray event on the workflow's trigger topic.
	ps, err := e.p.Cloud.PubSub.NewClient(t.Context(), pipeline.Project)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	pub := ps.Publisher(pipeline.LifecycleTopic)
	defer pub.Stop()
	stray := `{"grantId":"` + ended + `","entitlement":"demo.demo-project.viewer","requester":"alice@example.com","state":"ACTIVE"}`
	if _, err := pub.Publish(t.Context(), &pubsub.Message{Data: []byte(stray), Attributes: map[string]string{
		"ce-specversion": "1.0", "ce-type": evs.TypeRevokeRequested, "ce-source": "//elsewhere", "ce-id": "stray-1",
	}}).Get(t.Context()); err != nil {
		t.Fatal(err)
	}
	workflow := "projects/" + pipeline.Project + "/locations/" + pipeline.Location + "/workflows/" + pipeline.Workflow
	var ignored *executionspb.Execution
	for deadline := time.Now().Add(20 * time.Second); ignored == nil && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		list, err := e.p.Cloud.Workflows.ListExecutions(t.Context(), &executionspb.ListExecutionsRequest{Parent: workflow, View: executionspb.ExecutionView_FULL})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(list.GetExecutions()); n != 4 {
			continue
		}
		for _, x := range list.GetExecutions() {
			if x.GetState() == executionspb.Execution_SUCCEEDED && x.GetResult() == `"ignored"` {
				ignored = x
			}
		}
	}
	if ignored == nil {
		t.Fatal("the stray event did not end in an ignored execution (4 executions in all)")
	}
	time.Sleep(200 * time.Millisecond) // anything the stray would have sent is out by now

	want := map[string]string{
		pipeline.LifecycleTopic:  evs.TypeRequested,
		pipeline.ApprovalTopic:   evs.TypeApprovalRequested,
		pipeline.ActivationTopic: evs.TypeActivationRequested,
		pipeline.RevokeTopic:     evs.TypeRevokeRequested,
	}
	counts := map[string]int{}
	for _, m := range f.Messages() {
		topic := m.Topic[strings.LastIndex(m.Topic, "/")+1:]
		typ := m.Attributes["ce-type"]
		counts[topic]++
		switch w, ok := want[topic]; {
		case m.Attributes["ce-id"] == "stray-1":
		case ok && typ != w:
			t.Errorf("%s carries %s, want only %s", topic, typ, w)
		case topic == pipeline.Topic && (typ == evs.TypeApprovalRequested || typ == evs.TypeActivationRequested || typ == evs.TypeRevokeRequested):
			t.Errorf("the events topic carries the command %s", typ)
		}
	}
	// Three grants: three lifecycles (plus the stray); two approval
	// requests and two activations, none from the stray execution; and the
	// audit trail has the transitions.
	if counts[pipeline.LifecycleTopic] < 4 || counts[pipeline.ApprovalTopic] != 2 || counts[pipeline.ActivationTopic] != 2 ||
		counts[pipeline.Topic] == 0 || counts[pipeline.RevokeTopic] == 0 {
		t.Errorf("messages per topic %v; want ≥4 lifecycle, 2 approval, 2 activation, and some revocations and audit events", counts)
	}
}

// A zero duration is refused with a message that says what was wrong
// (before: "…such as PT1H: <nil>").
func TestZeroDurationMessage(t *testing.T) {
	t.Parallel()
	e := start(t, pipeline.Config{})
	for _, d := range []string{"PT0S", "P0D", "-PT1H"} {
		code, body := e.call("POST", "/v1/grants", "alice@example.com", map[string]any{
			"entitlement": "demo.demo-project.viewer", "requestedDuration": d, "justification": "INC-1",
		})
		errBody, _ := body["error"].(map[string]any)
		msg, _ := errBody["message"].(string)
		if code != 400 || errBody["field"] != "requestedDuration" || strings.Contains(msg, "<nil>") || !strings.Contains(msg, "PT1H") {
			t.Errorf("%s: %d %v", d, code, body)
		}
	}
}
