package embedded_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/jitpipeline/jit/internal/auth"
	"github.com/jitpipeline/jit/internal/local/gcp/embedded"
	"github.com/jitpipeline/jit/internal/local/gcp/localiam"
	"github.com/jitpipeline/jit/internal/local/gcp/localoidc"
	"github.com/jitpipeline/jit/internal/local/gcp/loopback"
)

const (
	project  = "jit-local"
	location = "us-central1"
	queue    = "revocations"
	wfSA     = "lifecycle@jit-local.iam.gserviceaccount.com"
	revokeSA = "revoke-invoker@jit-local.iam.gserviceaccount.com"

	helperEnv = "EMBEDDED_HELPER_CONFIG"
)

// sleeper sleeps, then calls back the test with an OIDC token: the shape of
// the lifecycle workflow's "wait until end, then ask for revoke".
const sleeper = `
main:
  params: [args]
  steps:
    - wait_until_end:
        call: sys.sleep
        args:
          seconds: 3
    - ask_for_revoke:
        call: http.post
        args:
          url: ${args.url}
          auth:
            type: OIDC
          body:
            grant: ${args.grant}
        result: resp
    - done:
        return: ${resp.code}
`

type helperConfig struct {
	DataDir, GRPCAddr, HTTPAddr, WorkflowsDir string
}

func seed(s *localiam.Server) error {
	if err := s.AddOrganization("100000000001"); err != nil {
		return err
	}
	return s.AddProject("demo-project", 100000000002, "organizations/100000000001")
}

// TestHelperProcess is the child process of TestKillDashNine: it runs the
// embedded cloud until it is killed.
func TestHelperProcess(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		t.Skip("helper process for TestKillDashNine")
	}
	var hc helperConfig
	if err := json.Unmarshal([]byte(raw), &hc); err != nil {
		t.Fatal(err)
	}
	c, err := embedded.Start(context.Background(), embedded.Config{
		DataDir: hc.DataDir, Project: project, Location: location,
		GRPCAddr: hc.GRPCAddr, HTTPAddr: hc.HTTPAddr, WorkflowsDir: hc.WorkflowsDir,
		WorkflowServiceAccount: wfSA, Queues: []string{queue}, Seed: seed,
	})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	fmt.Println("ready", c.GRPCAddr, c.HTTPURL)
	select {} // until SIGKILL
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type child struct{ cmd *exec.Cmd }

func startChild(t *testing.T, hc helperConfig) *child {
	t.Helper()
	raw, _ := json.Marshal(hc)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v=false")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) //nolint:errcheck // may be dead already
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready") || strings.HasPrefix(sc.Text(), "error") {
				ready <- sc.Text()
			}
		}
		io.Copy(io.Discard, out) //nolint:errcheck // draining
	}()
	select {
	case line := <-ready:
		if !strings.HasPrefix(line, "ready") {
			t.Fatalf("child failed: %s", line)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("child did not start")
	}
	return &child{cmd: cmd}
}

func (c *child) kill9(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil { // SIGKILL: no chance to flush or clean up
		t.Fatal(err)
	}
	c.cmd.Wait() //nolint:errcheck // killed
}

type receiver struct {
	mu   sync.Mutex
	hits map[string][]string // path → verified caller emails
	srv  *httptest.Server
}

func newReceiver(t *testing.T, verify func(token, audience string) (*auth.Claims, error)) *receiver {
	r := &receiver{hits: map[string][]string{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		token := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
		claims, err := verify(token, r.srv.URL+req.URL.Path)
		if err != nil {
			t.Errorf("%s: token refused: %v", req.URL.Path, err)
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		r.mu.Lock()
		r.hits[req.URL.Path] = append(r.hits[req.URL.Path], claims.Email)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]string{}
	for k, v := range r.hits {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// TestKillDashNine is the acceptance: a scheduled revocation task, a
// sleeping workflow execution and an IAM policy all survive kill -9 of the
// process that holds them, and the task and the execution fire on restart,
// once each. Facts: docs/google-cloud.md §3 (tasks fire at schedule_time; a task whose
// time has passed is dispatched at once; a task name stays reserved after it
// ran), §4 (sys.sleep; an execution runs to completion), §1 (etag).
func TestKillDashNine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills child processes; skipped with -short")
	}
	t.Parallel()
	ctx := t.Context()
	dataDir := t.TempDir()
	wfDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(wfDir, "sleeper.yaml"), []byte(sleeper), 0o600); err != nil {
		t.Fatal(err)
	}
	hc := helperConfig{DataDir: dataDir, GRPCAddr: freeAddr(t), HTTPAddr: freeAddr(t), WorkflowsDir: wfDir}

	// The child creates the signing key; the parent reads the same file, as
	// a receiver configured with the local key set would.
	first := startChild(t, hc)
	signer, err := localoidc.Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	idTokens, err := auth.NewGoogle(auth.GoogleConfig{KeysJSON: signer.JWKS()})
	if err != nil {
		t.Fatal(err)
	}
	recv := newReceiver(t, idTokens.Verify)

	tasks, err := cloudtasks.NewClient(ctx, loopback.ClientOptions(hc.GRPCAddr)...)
	if err != nil {
		t.Fatal(err)
	}
	defer tasks.Close()
	execs, err := executions.NewClient(ctx, loopback.ClientOptions(hc.GRPCAddr)...)
	if err != nil {
		t.Fatal(err)
	}
	defer execs.Close()
	projects, err := resourcemanager.NewProjectsClient(ctx, loopback.ClientOptions(hc.GRPCAddr)...)
	if err != nil {
		t.Fatal(err)
	}
	defer projects.Close()

	// A conditional binding, written at version 3 with the etag.
	pol, err := projects.GetIamPolicy(ctx, &iampb.GetIamPolicyRequest{Resource: "projects/demo-project", Options: &iampb.GetPolicyOptions{RequestedPolicyVersion: 3}})
	if err != nil {
		t.Fatal(err)
	}
	pol.Version = 3
	pol.Bindings = append(pol.Bindings, &iampb.Binding{
		Role:    "roles/compute.admin",
		Members: []string{"user:alice@example.com"},
		Condition: &expr.Expr{
			Title:      "JIT access activation",
			Expression: `(request.time >= timestamp("2026-01-01T00:00:00Z") && request.time < timestamp("2026-01-01T01:00:00Z"))`,
		},
	})
	written, err := projects.SetIamPolicy(ctx, &iampb.SetIamPolicyRequest{Resource: "projects/demo-project", Policy: pol})
	if err != nil {
		t.Fatal(err)
	}

	taskName := fmt.Sprintf("projects/%s/locations/%s/queues/%s/tasks/revoke-g1", project, location, queue)
	task := &cloudtaskspb.Task{
		Name:         taskName,
		ScheduleTime: timestamppb.New(time.Now().Add(2 * time.Second)),
		MessageType: &cloudtaskspb.Task_HttpRequest{HttpRequest: &cloudtaskspb.HttpRequest{
			Url:                 recv.srv.URL + "/revoke",
			HttpMethod:          cloudtaskspb.HttpMethod_POST,
			Body:                []byte(`{"grant":"g1"}`),
			AuthorizationHeader: &cloudtaskspb.HttpRequest_OidcToken{OidcToken: &cloudtaskspb.OidcToken{ServiceAccountEmail: revokeSA}},
		}},
	}
	if _, err := tasks.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: taskName[:strings.Index(taskName, "/tasks/")], Task: task}); err != nil {
		t.Fatal(err)
	}
	arg, _ := json.Marshal(map[string]string{"url": recv.srv.URL + "/workflow", "grant": "g1"})
	ex, err := execs.CreateExecution(ctx, &executionspb.CreateExecutionRequest{
		Parent:    fmt.Sprintf("projects/%s/locations/%s/workflows/sleeper", project, location),
		Execution: &executionspb.Execution{Argument: string(arg)},
	})
	if err != nil {
		t.Fatal(err)
	}

	// Kill while the task waits and the execution sleeps, and stay down past
	// both deadlines: nothing may fire while the process is dead.
	time.Sleep(500 * time.Millisecond)
	first.kill9(t)
	time.Sleep(3500 * time.Millisecond)
	if got := recv.got(); len(got) != 0 {
		t.Fatalf("calls while the process was dead: %v", got)
	}

	startChild(t, hc)
	want := map[string][]string{"/revoke": {revokeSA}, "/workflow": {wfSA}}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && len(recv.got()) < 2 {
		time.Sleep(50 * time.Millisecond)
	}
	var done *executionspb.Execution
	for time.Now().Before(deadline) {
		done, err = execs.GetExecution(ctx, &executionspb.GetExecutionRequest{Name: ex.GetName()})
		if err != nil {
			t.Fatal(err)
		}
		if done.GetState() != executionspb.Execution_ACTIVE {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if done.GetState() != executionspb.Execution_SUCCEEDED || done.GetResult() != "200" {
		t.Errorf("execution after restart: state %v, result %q, error %v", done.GetState(), done.GetResult(), done.GetError())
	}
	// Give a duplicate dispatch a chance to show before comparing.
	time.Sleep(500 * time.Millisecond)
	if diff := cmp.Diff(want, recv.got()); diff != "" {
		t.Errorf("calls after restart (-want +got):\n%s", diff)
	}

	// The task name stays reserved after it ran, across the restart.
	_, err = tasks.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: taskName[:strings.Index(taskName, "/tasks/")], Task: task})
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("re-creating the task after it ran: %v, want ALREADY_EXISTS", err)
	}
	// The policy and its etag are as written before the kill.
	after, err := projects.GetIamPolicy(ctx, &iampb.GetIamPolicyRequest{Resource: "projects/demo-project", Options: &iampb.GetPolicyOptions{RequestedPolicyVersion: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(written, after, protocmp.Transform()); diff != "" {
		t.Errorf("policy after restart (-before +after):\n%s", diff)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cfg := embedded.Config{GRPCAddr: "0.0.0.0:8090", HTTPAddr: "10.1.2.3:80"}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate accepted an empty config")
	}
	for _, want := range []string{"DataDir", "Project", "Location", "WorkflowServiceAccount", `GRPCAddr: "0.0.0.0:8090" is not a loopback`, `HTTPAddr: "10.1.2.3:80" is not a loopback`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; missing %q", err, want)
		}
	}
	ok := embedded.Config{DataDir: "d", Project: "p", Location: "l", WorkflowServiceAccount: "w", GRPCAddr: "127.0.0.1:0", HTTPAddr: "[::1]:0"}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(loopback config) = %v", err)
	}
}
