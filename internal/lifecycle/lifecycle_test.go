package lifecycle_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"cloud.google.com/go/workflows/executions/apiv1/executionspb"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/iambinding"
	"github.com/jitpipeline/jit/internal/ledger/sqlite"
	"github.com/jitpipeline/jit/internal/lifecycle"
	"github.com/jitpipeline/jit/internal/policy"
)

const testPolicy = `
schemaVersion: 1
environment:
  name: demo
  access:
    - {principal: "class:iapUsers", allow: "VIEW"}
    - {principal: "group:admins@example.com", allow: "RECONCILE"}
  constraints:
    join:
      - {type: expiry, min: PT1M, max: PT8H}
  systems:
    - name: demo-project
      access:
        - {principal: "serviceAccount:bot@p.iam.gserviceaccount.com", allow: "REQUEST_ON_BEHALF"}
      groups:
        - name: viewer
          access:
            - {principal: "group:sre@example.com", allow: "JOIN, APPROVE_SELF"}
          privileges:
            iam:
              - {resource: projects/demo-project, role: roles/compute.viewer}
        - name: pair
          access:
            - {principal: "group:sre@example.com", allow: "JOIN, APPROVE_SELF"}
          privileges:
            iam:
              - {resource: projects/demo-project, role: roles/compute.viewer}
              - {resource: projects/gone-project, role: roles/compute.viewer}
        - name: peer
          access:
            - {principal: "group:sre@example.com", allow: "JOIN, APPROVE_OTHERS"}
            - {principal: "user:carol@example.com", allow: "APPROVE_OTHERS"}
          constraints:
            approve:
              - {type: approvals, required: 1, window: PT1H}
          privileges:
            iam:
              - {resource: projects/demo-project, role: roles/compute.viewer}
        - name: admin
          access:
            - {principal: "group:sre@example.com", allow: "JOIN"}
            - {principal: "user:carol@example.com", allow: "APPROVE_OTHERS"}
          constraints:
            approve:
              - {type: approvals, required: 1, window: PT1H}
          privileges:
            iam:
              - {resource: projects/demo-project, role: roles/compute.admin}
`

const (
	viewer = "demo.demo-project.viewer"
	pair   = "demo.demo-project.pair"
	admin  = "demo.demo-project.admin"
	peer   = "demo.demo-project.peer"

	workflow      = "projects/p/locations/l/workflows/grant-lifecycle"
	executionsURL = "https://workflowexecutions.test"
	queue         = "projects/p/locations/l/queues/revocations"
)

var (
	alice = lifecycle.Caller{Email: "alice@example.com", HostedDomain: "example.com"}
	carol = lifecycle.Caller{Email: "carol@example.com", HostedDomain: "example.com"}
	grace = lifecycle.Caller{Email: "grace@example.com", HostedDomain: "example.com"}
	t0    = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
)

// env is the four services over one real SQLite ledger, a manual clock
// and fakes of the clients that record what they were asked.
type env struct {
	t        *testing.T
	ctx      context.Context
	clk      *clock.Manual
	ledger   *sqlite.Ledger
	events   *fakePublisher
	starts   *fakePublisher
	revokes  *fakePublisher
	iam      *fakeIAM
	tasks    *fakeTasks
	calls    *fakeCallbacks
	execs    *fakeExecutions
	intake   *lifecycle.IntakeService
	approval *lifecycle.ApprovalService
	grant    *lifecycle.GrantService
	revoke   *lifecycle.RevokeService
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clk := clock.NewManual(t0)
	l, err := sqlite.Open(filepath.Join(t.TempDir(), "ledger.db"), sqlite.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	pol, err := policy.Compile([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		t: t, ctx: context.Background(), clk: clk, ledger: l,
		events: &fakePublisher{}, starts: &fakePublisher{}, revokes: &fakePublisher{},
		iam: newFakeIAM(clk), tasks: &fakeTasks{tasks: map[string]*cloudtaskspb.Task{}},
		calls: &fakeCallbacks{}, execs: &fakeExecutions{runs: map[string]string{}},
	}
	common := lifecycle.Common{Ledger: l, Policy: staticPolicy{pol}, Events: e.events, Lifecycle: e.starts, Clock: clk}
	callers := lifecycle.Callers{Groups: fakeGroups{
		"alice@example.com": {"sre@example.com"},
		"sam@example.com":   {"sre@example.com"},
		"grace@example.com": {"admins@example.com"},
	}, InternalDomains: []string{"example.com"}}
	resume := lifecycle.Resume{Workflow: workflow, ExecutionsURL: executionsURL, Callbacks: e.calls}
	priv := lifecycle.Privileged{IAM: e.iam, Tasks: e.tasks, RevokeQueue: queue, RevokeURL: "https://revoke.test/task", RevokeServiceAccount: "tasks@p.iam.gserviceaccount.com"}
	if e.intake, err = lifecycle.NewIntake(lifecycle.IntakeConfig{Common: common, Callers: callers, Resume: resume, Revocations: e.revokes}); err != nil {
		t.Fatal(err)
	}
	if e.approval, err = lifecycle.NewApproval(lifecycle.ApprovalConfig{Common: common, Callers: callers, Resume: resume, Executions: e.execs}); err != nil {
		t.Fatal(err)
	}
	if e.grant, err = lifecycle.NewGrant(lifecycle.GrantConfig{Common: common, Callers: callers, Resume: resume, Executions: e.execs, Privileged: priv}); err != nil {
		t.Fatal(err)
	}
	if e.revoke, err = lifecycle.NewRevoke(lifecycle.RevokeConfig{Common: common, Privileged: priv}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) request(who lifecycle.Caller, entitlement string) *grant.Grant {
	e.t.Helper()
	g, err := e.intake.Request(e.ctx, who, lifecycle.RequestInput{Entitlement: entitlement, RequestedDuration: "PT1H", Justification: "incident 42"})
	if err != nil {
		e.t.Fatalf("Request(%s): %v", entitlement, err)
	}
	return g
}

func (e *env) get(id string) *grant.Grant {
	e.t.Helper()
	g, err := e.ledger.Get(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return g
}

func (e *env) wantState(id string, want grant.State) *grant.Grant {
	e.t.Helper()
	g := e.get(id)
	if g.State != want {
		e.t.Fatalf("%s is %s, want %s; timeline %+v", id, g.State, want, g.Timeline)
	}
	return g
}

// run starts a workflow execution for the grant, as Eventarc does.
func (e *env) run(id, execution string) {
	e.execs.mu.Lock()
	defer e.execs.mu.Unlock()
	e.execs.runs[workflow+"/executions/"+execution] = id
}

func callbackURL(execution, cb string) string {
	return executionsURL + "/v1/" + workflow + "/executions/" + execution + "/callbacks/" + cb
}

func activation(id, execution string) *events.Data {
	return &events.Data{GrantID: id, CallbackURL: callbackURL(execution, "activated"), EndCallbackURL: callbackURL(execution, "end")}
}

func (e *env) activate(id string) *grant.Grant {
	e.t.Helper()
	e.run(id, "x-"+id)
	if err := e.grant.OnActivationRequested(e.ctx, activation(id, "x-"+id)); err != nil {
		e.t.Fatalf("OnActivationRequested: %v", err)
	}
	return e.get(id)
}

func wantKind(t *testing.T, err, kind error, field string) {
	t.Helper()
	var le *lifecycle.Error
	if !errors.Is(err, kind) || !errors.As(err, &le) || le.Field != field {
		t.Fatalf("error %v; want a lifecycle.Error of kind %v, field %q", err, kind, field)
	}
}

// A self-approved request activates, is idempotent on redelivery, refuses
// an early revocation task, and ends at its end time with the removal
// verified.
func TestSelfApprovedLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.request(alice, viewer)
	if g.State != grant.Activating {
		t.Fatalf("state %s, want ACTIVATING", g.State)
	}
	if diff := cmp.Diff([]string{events.TypeRequested}, e.events.types()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{events.TypeRequested}, e.starts.types()); diff != "" {
		t.Errorf("lifecycle topic (-want +got):\n%s", diff)
	}

	g = e.activate(g.ID)
	if g.State != grant.Active || !g.EndTime.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after activation: %s until %s", g.State, g.EndTime)
	}
	if got := e.tasks.created(); len(got) != 1 || !strings.Contains(got[0], g.ID) {
		t.Errorf("tasks created %v, want one for %s", got, g.ID)
	}
	if got := e.iam.windows("projects/demo-project", "roles/compute.viewer", "user:alice@example.com"); !slices.Equal(got, []string{g.ID}) {
		t.Errorf("binding windows %v, want %s", got, g.ID)
	}
	wantCall := call{callbackURL("x-"+g.ID, "activated"), map[string]any{"state": grant.Active, "endTime": g.EndTime.Unix()}}
	if diff := cmp.Diff([]call{wantCall}, e.calls.all()); diff != "" {
		t.Errorf("callbacks (-want +got):\n%s", diff)
	}

	// Redelivered: the workflow is resumed again, nothing else happens.
	applies := e.iam.applies()
	if err := e.grant.OnActivationRequested(e.ctx, activation(g.ID, "x-"+g.ID)); err != nil {
		t.Fatal(err)
	}
	if n := len(e.tasks.created()); n != 1 {
		t.Errorf("redelivery created tasks: %d", n)
	}
	if e.iam.applies() != applies {
		t.Errorf("redelivery wrote IAM again")
	}
	if diff := cmp.Diff([]call{wantCall, wantCall}, e.calls.all()); diff != "" {
		t.Errorf("callbacks after redelivery (-want +got):\n%s", diff)
	}

	// The task delivered before the end: too early, retried.
	task := lifecycle.RevocationTask{GrantID: g.ID, ScheduleTime: g.EndTime}
	err := e.revoke.OnRevocationTask(e.ctx, task)
	var early *lifecycle.TooEarlyError
	if !errors.Is(err, lifecycle.ErrTooEarly) || !errors.As(err, &early) || early.RetryAfter != time.Hour {
		t.Fatalf("early task: %v; want too early by 1h", err)
	}
	e.wantState(g.ID, grant.Active)

	e.clk.Advance(time.Hour)
	for range 2 { // and its redelivery
		if err := e.revoke.OnRevocationTask(e.ctx, task); err != nil {
			t.Fatalf("task at the end: %v", err)
		}
	}
	g = e.wantState(g.ID, grant.Ended)
	if !g.RevocationVerified {
		t.Error("removal not verified")
	}
	if got := e.iam.windows("projects/demo-project", "roles/compute.viewer", "user:alice@example.com"); len(got) != 0 {
		t.Errorf("binding left: %v", got)
	}
	want := []string{events.TypeRequested, events.TypeActivated, events.TypeRevocationVerified, events.TypeEnded}
	if diff := cmp.Diff(want, e.events.types()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// A request that needs approval waits for the approver, is activated on
// approval, and is withdrawn by the requester through the revoke function.
func TestApprovalActivationWithdrawal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.request(alice, admin)
	if g.State != grant.ApprovalAwaited {
		t.Fatalf("state %s", g.State)
	}
	e.run(g.ID, "x1")
	cmd := &events.Data{GrantID: g.ID, CallbackURL: callbackURL("x1", "decision")}
	for range 2 { // and its redelivery
		if err := e.approval.OnApprovalRequested(e.ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	if g = e.get(g.ID); g.Execution != "x1" || g.ApprovalCallback != cmd.CallbackURL || len(e.calls.all()) != 0 {
		t.Fatalf("after approval.requested: execution %q callback %q, calls %v", g.Execution, g.ApprovalCallback, e.calls.all())
	}

	// A second execution of the same grant is told it is a duplicate.
	e.run(g.ID, "x2")
	if err := e.approval.OnApprovalRequested(e.ctx, &events.Data{GrantID: g.ID, CallbackURL: callbackURL("x2", "decision")}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]call{{callbackURL("x2", "decision"), map[string]any{"state": lifecycle.StateDuplicate}}}, e.calls.all()); diff != "" {
		t.Errorf("duplicate (-want +got):\n%s", diff)
	}

	_, err := e.approval.Approve(e.ctx, alice, g.ID, "")
	wantKind(t, err, lifecycle.ErrForbidden, "id")
	if g, err = e.approval.Approve(e.ctx, carol, g.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	if g.State != grant.Activating {
		t.Fatalf("after approval: %s", g.State)
	}
	_, err = e.approval.Approve(e.ctx, carol, g.ID, "again")
	wantKind(t, err, lifecycle.ErrConflict, "")
	if got := e.calls.all(); len(got) != 2 || got[1].URL != cmd.CallbackURL {
		t.Errorf("decision did not resume the workflow: %v", got)
	}

	if err := e.grant.OnActivationRequested(e.ctx, activation(g.ID, "x1")); err != nil {
		t.Fatal(err)
	}
	e.wantState(g.ID, grant.Active)

	// Withdrawn: a command to the revoke function, and the workflow stops
	// waiting for the end. Intake itself changes no IAM.
	applies := e.iam.applies()
	if g, err = e.intake.Withdraw(e.ctx, alice, g.ID); err != nil {
		t.Fatal(err)
	}
	if g.State != grant.Withdrawing || e.iam.applies() != applies {
		t.Fatalf("after withdraw: %s, IAM writes %d → %d", g.State, applies, e.iam.applies())
	}
	if diff := cmp.Diff([]string{events.TypeRevokeRequested}, e.revokes.types()); diff != "" {
		t.Errorf("revocations topic (-want +got):\n%s", diff)
	}
	if got := e.calls.all(); got[len(got)-1].URL != callbackURL("x1", "end") {
		t.Errorf("end callback not called: %v", got)
	}
	for range 2 { // and its redelivery
		if _, err := e.revoke.Revoke(e.ctx, g.ID, lifecycle.ReasonWithdraw, "workflow"); err != nil {
			t.Fatal(err)
		}
	}
	g = e.wantState(g.ID, grant.Withdrawn)
	if !g.RevocationVerified {
		t.Error("removal not verified")
	}
	if got := e.iam.windows("projects/demo-project", "roles/compute.admin", "user:alice@example.com"); len(got) != 0 {
		t.Errorf("binding left: %v", got)
	}
	if got := e.tasks.deleted(); len(got) != 1 {
		t.Errorf("pending revocation task not deleted: %v", got)
	}
}

// Denial needs a reason and ends the request; a second decision is a
// conflict.
func TestDenial(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.request(alice, admin)
	_, err := e.approval.Deny(e.ctx, carol, g.ID, "")
	wantKind(t, err, lifecycle.ErrInvalid, "reason")
	if _, err := e.approval.Deny(e.ctx, carol, g.ID, "not now"); err != nil {
		t.Fatal(err)
	}
	e.wantState(g.ID, grant.Denied)
	_, err = e.approval.Deny(e.ctx, carol, g.ID, "still not")
	wantKind(t, err, lifecycle.ErrConflict, "")
	// The workflow's command arriving after the decision resumes it at once.
	e.run(g.ID, "x1")
	if err := e.approval.OnApprovalRequested(e.ctx, &events.Data{GrantID: g.ID, CallbackURL: callbackURL("x1", "d")}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]call{{callbackURL("x1", "d"), map[string]any{"state": grant.Denied}}}, e.calls.all()); diff != "" {
		t.Errorf("callbacks (-want +got):\n%s", diff)
	}
}

// A request nobody decides on expires at the end of its approval window,
// not before.
func TestExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.request(alice, admin)
	if _, err := e.revoke.Revoke(e.ctx, g.ID, lifecycle.ReasonExpired, "workflow"); err == nil {
		t.Fatal("expired before the window closed")
	}
	e.wantState(g.ID, grant.ApprovalAwaited)
	e.clk.Advance(time.Hour)
	for range 2 { // and its redelivery
		if _, err := e.revoke.Revoke(e.ctx, g.ID, lifecycle.ReasonExpired, "workflow"); err != nil {
			t.Fatal(err)
		}
	}
	e.wantState(g.ID, grant.Expired)
	_, err := e.approval.Approve(e.ctx, carol, g.ID, "")
	wantKind(t, err, lifecycle.ErrConflict, "")
}

// A request still waiting is withdrawn at once; only its requester may,
// and only once.
func TestWithdrawBeforeApproval(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.request(alice, admin)
	_, err := e.intake.Withdraw(e.ctx, carol, g.ID)
	wantKind(t, err, lifecycle.ErrForbidden, "id")
	if _, err := e.intake.Withdraw(e.ctx, alice, g.ID); err != nil {
		t.Fatal(err)
	}
	e.wantState(g.ID, grant.Withdrawn)
	_, err = e.intake.Withdraw(e.ctx, alice, g.ID)
	wantKind(t, err, lifecycle.ErrConflict, "")
	if len(e.revokes.types()) != 0 {
		t.Errorf("a request that held nothing was sent to the revoke function")
	}
}

// An administrator's revocation moves the grant to REVOKING and commands
// the revoke function; anyone else is refused.
func TestRevokeByAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.activate(e.request(alice, viewer).ID)
	_, err := e.intake.RevokeByAdmin(e.ctx, alice, g.ID, "")
	wantKind(t, err, lifecycle.ErrForbidden, "id")
	if g, err = e.intake.RevokeByAdmin(e.ctx, grace, g.ID, "incident over"); err != nil {
		t.Fatal(err)
	}
	if g.State != grant.Revoking {
		t.Fatalf("state %s", g.State)
	}
	if _, err := e.revoke.Revoke(e.ctx, g.ID, lifecycle.ReasonRevoke, "workflow"); err != nil {
		t.Fatal(err)
	}
	e.wantState(g.ID, grant.Revoked)
}

// Refusals of a request are domain errors naming the field.
func TestRequestRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		name  string
		who   lifecycle.Caller
		in    lifecycle.RequestInput
		kind  error
		field string
	}{
		{"no entitlement", alice, lifecycle.RequestInput{Justification: "x"}, lifecycle.ErrInvalid, "entitlement"},
		{"no justification", alice, lifecycle.RequestInput{Entitlement: viewer}, lifecycle.ErrInvalid, "justification"},
		{"bad duration", alice, lifecycle.RequestInput{Entitlement: viewer, Justification: "x", RequestedDuration: "soon"}, lifecycle.ErrInvalid, "requestedDuration"},
		{"unknown", alice, lifecycle.RequestInput{Entitlement: "demo.demo-project.nope", Justification: "x"}, lifecycle.ErrNotFound, "entitlement"},
		{"not allowed", carol, lifecycle.RequestInput{Entitlement: viewer, Justification: "x"}, lifecycle.ErrForbidden, "entitlement"},
		{"look-alike", lifecycle.Caller{Email: "Alice@Example.com "}, lifecycle.RequestInput{Entitlement: viewer, Justification: "x"}, lifecycle.ErrUnauthenticated, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := e.intake.Request(e.ctx, tc.who, tc.in)
			wantKind(t, err, tc.kind, tc.field)
		})
	}
}

// An IAM write that fails for good after writing part of the binding ends
// the activation ACTIVATION_FAILED: what was written is removed and the
// removal verified, and the workflow is resumed with the failure.
func TestActivationFailsPermanently(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.request(alice, viewer)
	e.iam.failOnce(status.Error(codes.FailedPrecondition, "policy too large"))
	g = e.activate(g.ID)
	if g.State != grant.ActivationFailed || !g.RevocationVerified {
		t.Fatalf("state %s, verified %t", g.State, g.RevocationVerified)
	}
	if got := e.iam.windows("projects/demo-project", "roles/compute.viewer", "user:alice@example.com"); len(got) != 0 {
		t.Errorf("partly written binding left: %v", got)
	}
	if got := e.calls.all(); len(got) != 1 || got[0].Body["state"] != grant.ActivationFailed {
		t.Errorf("workflow not resumed with the failure: %v", got)
	}
	if len(e.tasks.created()) != 1 {
		t.Errorf("the backstop task is scheduled before any write")
	}
}

// A transient IAM failure is returned for redelivery, which succeeds.
func TestActivationRetriesTransientFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.request(alice, viewer)
	e.run(g.ID, "x1")
	e.iam.failOnce(status.Error(codes.Unavailable, "try again"))
	if err := e.grant.OnActivationRequested(e.ctx, activation(g.ID, "x1")); err == nil {
		t.Fatal("transient failure not returned")
	}
	e.wantState(g.ID, grant.Activating)
	if err := e.grant.OnActivationRequested(e.ctx, activation(g.ID, "x1")); err != nil {
		t.Fatal(err)
	}
	e.wantState(g.ID, grant.Active)
	if n := len(e.tasks.created()); n != 1 {
		t.Errorf("one task per link, got %d creations", n)
	}
}

// A resource whose policy cannot be read fails the activation: nothing
// was written there (Unreachable), the binding written elsewhere is removed
// and verified.
func TestActivationUnreadableResource(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.iam.unreadable["projects/gone-project"] = true
	g := e.activate(e.request(alice, pair).ID)
	if g.State != grant.ActivationFailed || !g.RevocationVerified {
		t.Fatalf("state %s, verified %t", g.State, g.RevocationVerified)
	}
	if diff := cmp.Diff([]string{"projects/gone-project"}, g.Unreachable); diff != "" {
		t.Errorf("unreachable (-want +got):\n%s", diff)
	}
	if got := e.iam.windows("projects/demo-project", "roles/compute.viewer", "user:alice@example.com"); len(got) != 0 {
		t.Errorf("partly written binding left: %v", got)
	}
	if got := e.calls.all(); len(got) != 1 || got[0].Body["state"] != grant.ActivationFailed {
		t.Errorf("workflow not resumed with the failure: %v", got)
	}
}

// A command whose callback is not the workflow's is refused without any
// call or write.
func TestForeignCallbackRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.request(alice, viewer)
	for _, url := range []string{
		"https://evil.test/v1/" + workflow + "/executions/x1/callbacks/c",
		callbackURL("not-running", "c"), // no such execution
	} {
		if err := e.grant.OnActivationRequested(e.ctx, &events.Data{GrantID: g.ID, CallbackURL: url}); err != nil {
			t.Fatal(err)
		}
	}
	if e.wantState(g.ID, grant.Activating); e.iam.applies() != 0 || len(e.calls.all()) != 0 {
		t.Errorf("a refused command wrote IAM (%d) or called back (%v)", e.iam.applies(), e.calls.all())
	}
}

// Events whose publication failed are published by the sweep; it also
// ends overdue grants and purges the policy's resources.
func TestSweep(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.activate(e.request(alice, viewer).ID)
	e.events.setFail(true)
	other := e.request(alice, admin)
	e.events.setFail(false)
	if !slices.ContainsFunc(e.get(other.ID).Timeline, func(x grant.Entry) bool { return !x.Published }) {
		t.Fatal("the failed publication left nothing unpublished")
	}
	e.clk.Advance(time.Hour + lifecycle.SweepGrace)
	if err := e.revoke.Sweep(e.ctx); err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(e.get(other.ID).Timeline, func(x grant.Entry) bool { return !x.Published }) {
		t.Error("sweep left events unpublished")
	}
	e.wantState(g.ID, grant.Ended)
	if got := e.iam.purged(); !slices.Contains(got, "projects/demo-project") {
		t.Errorf("purged %v", got)
	}
}

// Each constructor names every missing dependency.
func TestConstructorsNameMissingDependencies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	common := lifecycle.Common{Ledger: e.ledger, Policy: staticPolicy{}, Events: e.events, Lifecycle: e.starts, Clock: e.clk}
	callers := lifecycle.Callers{Groups: fakeGroups{}}
	resume := lifecycle.Resume{Workflow: workflow, ExecutionsURL: executionsURL, Callbacks: e.calls}
	for _, tc := range []struct {
		name  string
		build func() error
		want  []string
	}{
		{"intake empty", func() error { _, err := lifecycle.NewIntake(lifecycle.IntakeConfig{}); return err },
			[]string{"lifecycle: intake service:", "Ledger", "Policy", "Events", "Lifecycle", "Clock", "Groups", "Workflow", "ExecutionsURL", "Callbacks", "Revocations"}},
		{"intake without revocations", func() error {
			_, err := lifecycle.NewIntake(lifecycle.IntakeConfig{Common: common, Callers: callers, Resume: resume})
			return err
		}, []string{"lifecycle: intake service: Revocations is required"}},
		{"approval empty", func() error { _, err := lifecycle.NewApproval(lifecycle.ApprovalConfig{}); return err },
			[]string{"lifecycle: approval service:", "Ledger", "Groups", "Callbacks", "Executions"}},
		{"approval without executions", func() error {
			_, err := lifecycle.NewApproval(lifecycle.ApprovalConfig{Common: common, Callers: callers, Resume: resume})
			return err
		}, []string{"lifecycle: approval service: Executions is required"}},
		{"grant empty", func() error { _, err := lifecycle.NewGrant(lifecycle.GrantConfig{}); return err },
			[]string{"lifecycle: grant service:", "Ledger", "Groups", "Callbacks", "Executions", "IAM", "Tasks", "RevokeQueue", "RevokeURL", "RevokeServiceAccount"}},
		{"grant without tasks", func() error {
			_, err := lifecycle.NewGrant(lifecycle.GrantConfig{Common: common, Callers: callers, Resume: resume, Executions: e.execs,
				Privileged: lifecycle.Privileged{IAM: e.iam, RevokeURL: "https://r", RevokeServiceAccount: "sa"}})
			return err
		}, []string{"lifecycle: grant service:", "Tasks is required", "RevokeQueue is required"}},
		{"revoke empty", func() error { _, err := lifecycle.NewRevoke(lifecycle.RevokeConfig{}); return err },
			[]string{"lifecycle: revoke service:", "Ledger", "IAM", "Tasks", "RevokeQueue"}},
		{"revoke without IAM", func() error {
			_, err := lifecycle.NewRevoke(lifecycle.RevokeConfig{Common: common, Privileged: lifecycle.Privileged{Tasks: e.tasks, RevokeQueue: queue, RevokeURL: "https://r", RevokeServiceAccount: "sa"}})
			return err
		}, []string{"lifecycle: revoke service: IAM is required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.build()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// Fakes of the narrow interfaces. Each behaves like its client on what
// the services rely on, and records the calls.

type staticPolicy struct{ p *policy.Policy }

func (s staticPolicy) Current(context.Context) (*policy.Policy, string, error) {
	if s.p == nil {
		return nil, "", errors.New("no policy")
	}
	return s.p, "test", nil
}

type fakeGroups map[string][]string

func (f fakeGroups) GroupsOf(_ context.Context, email string) ([]string, error) {
	return f[strings.ToLower(email)], nil
}

func (f fakeGroups) MembersOf(_ context.Context, group string) ([]string, error) {
	var out []string
	for u, gs := range f {
		if slices.Contains(gs, group) {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out, nil
}

type fakePublisher struct {
	mu     sync.Mutex
	events []cloudevents.Event
	fail   bool
}

func (f *fakePublisher) Publish(_ context.Context, e cloudevents.Event) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return "", errors.New("pubsub unavailable")
	}
	f.events = append(f.events, e)
	return fmt.Sprint(len(f.events)), nil
}

func (f *fakePublisher) setFail(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = v
}

func (f *fakePublisher) types() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.events {
		out = append(out, e.Type())
	}
	return out
}

type call struct {
	URL  string
	Body map[string]any
}

type fakeCallbacks struct {
	mu    sync.Mutex
	calls []call
}

func (f *fakeCallbacks) Call(_ context.Context, url string, body any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{url, body.(map[string]any)})
	return nil
}

func (f *fakeCallbacks) all() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// fakeExecutions answers for the executions started with run: ACTIVE,
// with the grant.requested event of their grant as the argument, as
// Eventarc starts them.
type fakeExecutions struct {
	mu   sync.Mutex
	runs map[string]string // execution name → grant ID
}

func (f *fakeExecutions) GetExecution(_ context.Context, req *executionspb.GetExecutionRequest, _ ...gax.CallOption) (*executionspb.Execution, error) {
	f.mu.Lock()
	id, ok := f.runs[req.GetName()]
	f.mu.Unlock()
	if !ok {
		return nil, status.Error(codes.NotFound, "no such execution")
	}
	data, _ := json.Marshal(map[string]string{"grantId": id})
	arg, _ := json.Marshal(map[string]any{"data": map[string]any{"message": map[string]any{
		"data": base64.StdEncoding.EncodeToString(data), "attributes": map[string]string{events.AttrPrefix + "type": events.TypeRequested},
	}}})
	return &executionspb.Execution{Name: req.GetName(), State: executionspb.Execution_ACTIVE, Argument: string(arg)}, nil
}

type fakeTasks struct {
	mu      sync.Mutex
	tasks   map[string]*cloudtaskspb.Task
	creates []string
	deletes []string
}

func (f *fakeTasks) CreateTask(_ context.Context, req *cloudtaskspb.CreateTaskRequest, _ ...gax.CallOption) (*cloudtaskspb.Task, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := req.GetTask().GetName()
	if !strings.HasPrefix(name, req.GetParent()+"/tasks/") {
		return nil, status.Errorf(codes.InvalidArgument, "task %q is not in %q", name, req.GetParent())
	}
	f.creates = append(f.creates, name)
	if _, ok := f.tasks[name]; ok {
		return nil, status.Error(codes.AlreadyExists, "task exists")
	}
	f.tasks[name] = req.GetTask()
	return req.GetTask(), nil
}

func (f *fakeTasks) DeleteTask(_ context.Context, req *cloudtaskspb.DeleteTaskRequest, _ ...gax.CallOption) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.tasks[req.GetName()]; !ok {
		return status.Error(codes.NotFound, "no task")
	}
	delete(f.tasks, req.GetName())
	f.deletes = append(f.deletes, req.GetName())
	return nil
}

func (f *fakeTasks) created() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []string{}
	for _, n := range f.creates {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func (f *fakeTasks) deleted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.deletes)
}

// fakeIAM keeps, per key, the windows of the one temporary binding, as
// iambinding.Writer does: a change replaces them with those that have not
// ended. Verify compares what is held with what is wanted.
type fakeIAM struct {
	mu         sync.Mutex
	clk        clock.Clock
	bindings   map[iambinding.Key][]iambinding.Window
	unreadable map[string]bool
	fail       error // the next Apply writes, then fails with it
	nApply     int
	purges     []string
}

func newFakeIAM(clk clock.Clock) *fakeIAM {
	return &fakeIAM{clk: clk, bindings: map[iambinding.Key][]iambinding.Window{}, unreadable: map[string]bool{}}
}

func (f *fakeIAM) failOnce(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

func (f *fakeIAM) live(ws []iambinding.Window) []iambinding.Window {
	var out []iambinding.Window
	for _, w := range ws {
		if w.End.After(f.clk.Now()) {
			out = append(out, w)
		}
	}
	return out
}

func (f *fakeIAM) Apply(_ context.Context, changes ...iambinding.Change) (iambinding.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nApply++
	var errs []error
	for _, c := range changes {
		if f.unreadable[c.Resource] {
			errs = append(errs, &iambinding.ReadError{Resource: c.Resource, Attempt: 1, Err: status.Error(codes.NotFound, "no such resource")})
			continue
		}
		if ws := f.live(c.Windows); len(ws) > 0 {
			f.bindings[c.Key] = ws
		} else {
			delete(f.bindings, c.Key)
		}
	}
	if f.fail != nil {
		err := f.fail
		f.fail = nil
		return iambinding.Result{}, err
	}
	return iambinding.Result{Writes: len(changes)}, errors.Join(errs...)
}

func (f *fakeIAM) Verify(_ context.Context, changes ...iambinding.Change) ([]iambinding.Check, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []iambinding.Check
	for _, c := range changes {
		ids := func(ws []iambinding.Window) []string {
			var s []string
			for _, w := range ws {
				s = append(s, w.GrantID)
			}
			slices.Sort(s)
			return s
		}
		want, held := ids(f.live(c.Windows)), ids(f.live(f.bindings[c.Key]))
		chk := iambinding.Check{Key: c.Key, At: f.clk.Now(), Verified: slices.Equal(want, held)}
		if !chk.Verified {
			chk.Problem = fmt.Sprintf("holds %v, want %v", held, want)
		}
		out = append(out, chk)
	}
	return out, nil
}

func (f *fakeIAM) Purge(_ context.Context, resources ...string) (iambinding.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.purges = append(f.purges, resources...)
	for k, ws := range f.bindings {
		if slices.Contains(resources, k.Resource) {
			if ws = f.live(ws); len(ws) == 0 {
				delete(f.bindings, k)
			}
		}
	}
	return iambinding.Result{}, nil
}

func (f *fakeIAM) windows(resource, role, member string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k, ws := range f.bindings {
		if k.Resource == resource && k.Role == role && k.Member == member {
			for _, w := range f.live(ws) {
				out = append(out, w.GrantID)
			}
		}
	}
	return out
}

func (f *fakeIAM) applies() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nApply
}

func (f *fakeIAM) purged() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.purges)
}

// The people told of a request are the approvers the policy in force names,
// groups expanded, never the requester, each allowed to decide now.
func TestApprovers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		entitlement string
		want        []string
	}{
		{admin, []string{"carol@example.com"}},
		// sre approves its members' requests: sam, not alice herself.
		{peer, []string{"carol@example.com", "sam@example.com"}},
	} {
		g := e.request(alice, tc.entitlement)
		got, err := e.approval.Approvers(e.ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Approvers(%s) (-want +got):\n%s", tc.entitlement, diff)
		}
	}
	// An entitlement the policy no longer has asks nobody.
	g := e.request(alice, admin)
	g.Entitlement = "demo.demo-project.gone"
	if got, err := e.approval.Approvers(e.ctx, g); err != nil || len(got) != 0 {
		t.Errorf("Approvers(gone) = %v, %v; want none", got, err)
	}
}
