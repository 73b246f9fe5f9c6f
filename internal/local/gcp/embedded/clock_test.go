package embedded_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	cloudtasks "cloud.google.com/go/cloudtasks/apiv2"
	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"cloud.google.com/go/iam/apiv1/iampb"
	resourcemanager "cloud.google.com/go/resourcemanager/apiv3"
	executions "cloud.google.com/go/workflows/executions/apiv1"
	"cloud.google.com/go/workflows/executions/apiv1/executionspb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/type/expr"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/local/gcp/embedded"
	"github.com/jitpipeline/jit/internal/local/gcp/localiam"
)

// napper sleeps a virtual minute and reports what sys.now said around it.
const napper = `
main:
  params: [args]
  steps:
    - before:
        assign:
          - t0: ${sys.now()}
    - nap:
        call: sys.sleep
        args:
          seconds: 60
    - after:
        assign:
          - t1: ${sys.now()}
    - report:
        call: http.post
        args:
          url: ${args.url}
          auth:
            type: OIDC
          body:
            t0: ${t0}
            t1: ${t1}
        result: resp
    - done:
        return: ${resp.code}
`

// arrival is one request seen by the test's HTTP target.
type arrival struct {
	real    time.Time // wall clock at arrival
	virtual time.Time // the cloud's clock at arrival
	eta     string    // X-CloudTasks-TaskETA
	body    []byte
}

// TestScaledClock is the point of the shared clock: on a clock running 60×
// real time, a Cloud Task scheduled a minute ahead and a workflow that
// sys.sleeps a minute both fire after about one real second, sys.now in the
// workflow reports the virtual time, and an IAM condition on request.time
// expires on the same virtual time. Facts: docs/google-cloud.md §3 (a task is
// dispatched at schedule_time; X-CloudTasks-TaskETA is the schedule time in
// seconds since the epoch), §4 (sys.sleep seconds; sys.now is seconds since
// the epoch), §1 (temporary access: request.time < timestamp(...)), §2
// (TestIamPermissions returns the permissions the caller holds).
func TestScaledClock(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	realStart := time.Now()
	clk := clock.Scaled(realStart, 60)

	wfDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(wfDir, "napper.yaml"), []byte(napper), 0o600); err != nil {
		t.Fatal(err)
	}
	arrivals := make(chan arrival, 4)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a arrival
		a.real, a.virtual = time.Now(), clk.Now()
		a.eta = r.Header.Get("X-CloudTasks-TaskETA")
		a.body, _ = io.ReadAll(r.Body)
		arrivals <- a
	}))
	t.Cleanup(target.Close)

	cloud, err := embedded.Start(ctx, embedded.Config{
		DataDir: t.TempDir(), Project: project, Location: location,
		WorkflowServiceAccount: wfSA, WorkflowsDir: wfDir, Queues: []string{queue}, Seed: seed,
		Clock: clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cloud.Close() })
	if cloud.Clock != clk {
		t.Errorf("Cloud.Clock is not the configured clock")
	}
	tasks, err := cloudtasks.NewClient(ctx, cloud.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer tasks.Close()
	execs, err := executions.NewClient(ctx, cloud.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer execs.Close()
	projects, err := resourcemanager.NewProjectsClient(ctx, cloud.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer projects.Close()

	// A grant that expires 30 virtual seconds from now.
	expiry := clk.Now().Add(30 * time.Second).UTC().Format(time.RFC3339)
	pol, err := projects.GetIamPolicy(ctx, &iampb.GetIamPolicyRequest{Resource: "projects/demo-project", Options: &iampb.GetPolicyOptions{RequestedPolicyVersion: 3}})
	if err != nil {
		t.Fatal(err)
	}
	pol.Version = 3
	pol.Bindings = append(pol.Bindings, &iampb.Binding{
		Role:      "roles/browser",
		Members:   []string{"user:alice@example.com"},
		Condition: &expr.Expr{Title: "expirable access", Expression: fmt.Sprintf("request.time < timestamp(%q)", expiry)},
	})
	if _, err := projects.SetIamPolicy(ctx, &iampb.SetIamPolicyRequest{Resource: "projects/demo-project", Policy: pol}); err != nil {
		t.Fatal(err)
	}
	alice := localiam.WithPrincipal(ctx, "user:alice@example.com")
	held := func() []string {
		t.Helper()
		resp, err := projects.TestIamPermissions(alice, &iampb.TestIamPermissionsRequest{Resource: "projects/demo-project", Permissions: []string{"resourcemanager.projects.get"}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetPermissions()
	}
	if diff := cmp.Diff([]string{"resourcemanager.projects.get"}, held()); diff != "" {
		t.Errorf("alice's permissions before expiry (-want +got):\n%s", diff)
	}

	// A task a virtual minute ahead, and a workflow that sleeps a virtual
	// minute, started at the same moment.
	created := time.Now()
	eta := clk.Now().Add(time.Minute).Truncate(time.Microsecond)
	parent := fmt.Sprintf("projects/%s/locations/%s/queues/%s", project, location, queue)
	if _, err := tasks.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: parent, Task: &cloudtaskspb.Task{
		ScheduleTime: timestamppb.New(eta),
		MessageType: &cloudtaskspb.Task_HttpRequest{HttpRequest: &cloudtaskspb.HttpRequest{
			Url: target.URL + "/task", HttpMethod: cloudtaskspb.HttpMethod_POST,
		}},
	}}); err != nil {
		t.Fatal(err)
	}
	arg, _ := json.Marshal(map[string]string{"url": target.URL + "/workflow"})
	ex, err := execs.CreateExecution(ctx, &executionspb.CreateExecutionRequest{
		Parent:    fmt.Sprintf("projects/%s/locations/%s/workflows/napper", project, location),
		Execution: &executionspb.Execution{Argument: string(arg)},
	})
	if err != nil {
		t.Fatal(err)
	}

	// Half the real minute a real clock would need bounds the wait: firing
	// within it is already proof that time ran faster.
	limit := time.NewTimer(30 * time.Second)
	defer limit.Stop()
	var task, wf *arrival
	for task == nil || wf == nil {
		select {
		case a := <-arrivals:
			if a.eta != "" {
				task = &a
			} else {
				wf = &a
			}
		case <-limit.C:
			t.Fatalf("after 30 s of real time: task fired %v, workflow reported %v", task != nil, wf != nil)
		}
	}

	// The task fired on the virtual clock, one real second after creation.
	if task.virtual.Before(eta) {
		t.Errorf("task fired at virtual %v, before its schedule_time %v", task.virtual, eta)
	}
	if want := fmt.Sprintf("%d.%06d", eta.Unix(), eta.Nanosecond()/1000); task.eta != want {
		t.Errorf("X-CloudTasks-TaskETA = %q, want %q", task.eta, want)
	}
	if d := task.real.Sub(created); d < time.Second-time.Millisecond {
		t.Errorf("task fired %v of real time after creation, want about 1s (60 s / 60)", d)
	}
	t.Logf("task fired after %v of real time, workflow reported after %v", task.real.Sub(created), wf.real.Sub(created))

	// sys.now in the workflow is virtual time: a minute passed around the
	// sleep, and it reads at least a minute past the test's start although
	// far less real time went by.
	var times struct{ T0, T1 float64 }
	if err := json.Unmarshal(wf.body, &times); err != nil {
		t.Fatalf("workflow report %q: %v", wf.body, err)
	}
	if times.T1-times.T0 < 60 {
		t.Errorf("sys.now advanced %v s across sys.sleep(60), want at least 60", times.T1-times.T0)
	}
	if start := float64(realStart.UnixMicro()) / 1e6; times.T1 < start+60 {
		t.Errorf("sys.now after the sleep = %v, want at least %v (test start + 60 virtual s)", times.T1, start+60)
	}
	if v := float64(wf.virtual.UnixMicro()) / 1e6; times.T1 > v {
		t.Errorf("sys.now after the sleep = %v, later than the clock at the report %v", times.T1, v)
	}
	if d := wf.real.Sub(created); d < time.Second-time.Millisecond {
		t.Errorf("workflow woke %v of real time after it started, want about 1s", d)
	}
	done := waitExecution(t, execs, ex.GetName())
	if done.GetState() != executionspb.Execution_SUCCEEDED || done.GetResult() != "200" {
		t.Errorf("execution: state %v, result %q, error %v; want SUCCEEDED, 200", done.GetState(), done.GetResult(), done.GetError())
	}

	// IAM evaluates request.time on the same clock: the grant has expired.
	if got := held(); len(got) != 0 {
		t.Errorf("alice's permissions after the virtual expiry %s = %v, want none", expiry, got)
	}
}

// waitExecution polls until the execution leaves ACTIVE.
func waitExecution(t *testing.T, execs *executions.Client, name string) *executionspb.Execution {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ex, err := execs.GetExecution(t.Context(), &executionspb.GetExecutionRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if ex.GetState() != executionspb.Execution_ACTIVE || time.Now().After(deadline) {
			return ex
		}
		time.Sleep(20 * time.Millisecond)
	}
}
