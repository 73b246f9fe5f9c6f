package wfrunner

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	executionspb "cloud.google.com/go/workflows/executions/apiv1/executionspb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jitpipeline/jit/internal/clock"
)

const awaitWorkflow = `
main:
  params: [args]
  steps:
    - create:
        call: events.create_callback_endpoint
        args:
          http_callback_method: POST
        result: cb
    - announce:
        call: http.post
        args:
          url: ${args.hook}
          body: {"url": "${cb.url}"}
    - log:
        call: sys.log
        args:
          text: ${"awaiting " + args.tag}
    - wait:
        call: events.await_callback
        args:
          callback: ${cb}
          timeout: 3600
        result: req
    - done:
        return: {"body": "${req.http_request.body}", "version": "v1"}
`

// startAwait deploys awaitWorkflow as name and starts it; it returns the
// execution name and the callback URL the workflow announced.
func startAwait(t *testing.T, te *testEnv, name, source string) (string, string) {
	t.Helper()
	if err := te.runner.Deploy(name, []byte(source)); err != nil {
		t.Fatal(err)
	}
	hook := "/hook/" + name
	exName, err := te.runner.Run(t.Context(), name, map[string]any{"hook": te.fixture.base + hook, "tag": name})
	if err != nil {
		t.Fatal(err)
	}
	var ann struct{ URL string }
	select {
	case b := <-te.fixture.hook(hook):
		if err := json.Unmarshal(b, &ann); err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("workflow did not announce its callback URL")
	}
	return exName, ann.URL
}

// waitJournal waits until the execution's last journal entry is kind.
func waitJournal(t *testing.T, r *Runner, name, kind string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ex := r.lookup(name)
		ex.mu.Lock()
		j := ex.rec.Journal
		last := ""
		if len(j) > 0 {
			last = j[len(j)-1].Kind
		}
		ex.mu.Unlock()
		if last == kind {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("execution %s never journaled %q", name, kind)
}

func post(t *testing.T, method, url, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestCallbackWhileAwaiting checks the callback HTTP contract (docs/google-cloud.md §4
// "Callbacks"): a POST to an awaiting execution resumes it with the body;
// a second unconsumed callback gets 429 [2nd]; a wrong method 405 (decision);
// after the execution finished, 404 [2nd].
func TestCallbackWhileAwaiting(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, envOptions{})
	name, url := startAwait(t, te, "await-live", awaitWorkflow)
	waitJournal(t, te.runner, name, "await")
	if code := post(t, http.MethodGet, url, ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET on a POST callback = %d, want 405", code)
	}
	if code := post(t, http.MethodPost, url, `{"decision":"approve"}`); code != http.StatusOK {
		t.Fatalf("callback = %d, want 200", code)
	}
	got := waitDone(t, te.client, name)
	if diff := cmp.Diff(`{"body":{"decision":"approve"},"version":"v1"}`, got.GetResult()); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if code := post(t, http.MethodPost, url, `{}`); code != http.StatusNotFound {
		t.Errorf("callback after the execution finished = %d, want 404", code)
	}
}

// TestSecondCallbackIs429 checks that a payload that arrives before the
// await is kept, and a second one while the first is unconsumed gets 429
// (docs/google-cloud.md §4 "Response codes for a callback call", [2nd]).
func TestSecondCallbackIs429(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, envOptions{})
	src := strings.Replace(awaitWorkflow, "    - wait:\n", "    - pause:\n        call: sys.sleep\n        args:\n          seconds: 3600\n    - wait:\n", 1)
	name, url := startAwait(t, te, "await-429", src)
	waitJournal(t, te.runner, name, "sleep")
	if code := post(t, http.MethodPost, url, `{"n":1}`); code != http.StatusOK {
		t.Fatalf("first callback = %d, want 200", code)
	}
	if code := post(t, http.MethodPost, url, `{"n":2}`); code != http.StatusTooManyRequests {
		t.Fatalf("second callback = %d, want 429", code)
	}
	if _, err := te.client.CancelExecution(t.Context(), &executionspb.CancelExecutionRequest{Name: name}); err != nil {
		t.Fatal(err)
	}
}

// TestCallbackAuthorization checks that Config.AuthorizeCallback vets
// callbacks (401 unauthenticated, 403 when it refuses) and that unknown callback paths are 404.
func TestCallbackAuthorization(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, envOptions{authorize: func(r *http.Request) error {
		switch r.Header.Get("Authorization") {
		case "Bearer ok":
			return nil
		case "":
			return ErrUnauthenticated
		}
		return errors.New("missing workflows.callbacks.send")
	}})
	name, url := startAwait(t, te, "await-auth", awaitWorkflow)
	if code := post(t, http.MethodPost, url, `{}`); code != http.StatusUnauthorized {
		t.Errorf("unauthenticated callback = %d, want 401", code)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer other")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unauthorized callback = %d, want 403", resp.StatusCode)
	}
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodPost, url+"-nope", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer ok")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown callback = %d, want 404", resp.StatusCode)
	}
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(`"ok"`))
	req.Header.Set("Authorization", "Bearer ok")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authorized callback = %d, want 200", resp.StatusCode)
	}
	if got := waitDone(t, te.client, name); got.GetResult() != `{"body":"ok","version":"v1"}` {
		t.Errorf("result = %s", got.GetResult())
	}
}

// TestRedeployKeepsRunningSource checks that a redeploy applies to new
// executions only: the running one finishes with the source it started
// with (Execution.workflow_revision_id, docs/google-cloud.md §4 Go packages).
func TestRedeployKeepsRunningSource(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, envOptions{})
	name, url := startAwait(t, te, "redeploy", awaitWorkflow)
	waitJournal(t, te.runner, name, "await")
	if err := te.runner.Deploy("redeploy", []byte(strings.Replace(awaitWorkflow, `"v1"`, `"v2"`, 1))); err != nil {
		t.Fatal(err)
	}
	if code := post(t, http.MethodPost, url, `1`); code != http.StatusOK {
		t.Fatalf("callback = %d", code)
	}
	old := waitDone(t, te.client, name)
	if old.GetResult() != `{"body":1,"version":"v1"}` {
		t.Errorf("running execution result = %s, want v1", old.GetResult())
	}
	if !strings.HasPrefix(old.GetWorkflowRevisionId(), "000001-") {
		t.Errorf("first revision id = %q", old.GetWorkflowRevisionId())
	}
	n3, err := te.runner.Run(t.Context(), "redeploy", map[string]any{"hook": te.fixture.base + "/hook/redeploy3", "tag": "x"})
	if err != nil {
		t.Fatal(err)
	}
	var ann struct{ URL string }
	if err := json.Unmarshal(<-te.fixture.hook("/hook/redeploy3"), &ann); err != nil {
		t.Fatal(err)
	}
	waitJournal(t, te.runner, n3, "await")
	if code := post(t, http.MethodPost, ann.URL, `2`); code != http.StatusOK {
		t.Fatalf("callback = %d", code)
	}
	newer := waitDone(t, te.client, n3)
	if newer.GetResult() != `{"body":2,"version":"v2"}` || !strings.HasPrefix(newer.GetWorkflowRevisionId(), "000002-") {
		t.Errorf("new execution = %s (revision %s), want v2 on revision 2", newer.GetResult(), newer.GetWorkflowRevisionId())
	}
}

// TestCreateExecutionErrors checks the create-time errors of the real
// client: argument over 32 KB → INVALID_ARGUMENT (docs/google-cloud.md §4, executionspb
// Execution.Argument), non-JSON argument → INVALID_ARGUMENT, unknown
// workflow → NOT_FOUND.
func TestCreateExecutionErrors(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, envOptions{})
	if err := te.runner.Deploy("echo", []byte("main:\n  params: [a]\n  steps:\n    - r:\n        return: ${a}\n")); err != nil {
		t.Fatal(err)
	}
	big := `"` + strings.Repeat("x", MaxArgumentBytes) + `"`
	tests := []struct {
		name   string
		parent string
		arg    string
		want   codes.Code
	}{
		{"argument_too_large", te.runner.WorkflowName("echo"), big, codes.InvalidArgument},
		{"argument_not_json", te.runner.WorkflowName("echo"), "{nope", codes.InvalidArgument},
		{"unknown_workflow", te.runner.WorkflowName("nope"), "", codes.NotFound},
		{"bad_parent", "projects/x/workflows/y", "", codes.InvalidArgument},
		{"argument_at_limit", te.runner.WorkflowName("echo"), big[:MaxArgumentBytes-2] + `"`, codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := te.client.CreateExecution(t.Context(), &executionspb.CreateExecutionRequest{
				Parent: tc.parent, Execution: &executionspb.Execution{Argument: tc.arg},
			})
			if got := status.Code(err); got != tc.want {
				t.Errorf("code = %v (%v), want %v", got, err, tc.want)
			}
		})
	}
}

// TestCancelSleepingExecution checks CancelExecution: a sleeping execution
// stops at once and reads back CANCELLED with an error and no result
// (docs/google-cloud.md §4: error only when FAILED or CANCELLED); cancelling again is
// FAILED_PRECONDITION.
func TestCancelSleepingExecution(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, envOptions{})
	src := "main:\n  steps:\n    - nap:\n        call: sys.sleep\n        args:\n          seconds: 3600\n    - r:\n        return: 1\n"
	if err := te.runner.Deploy("sleeper", []byte(src)); err != nil {
		t.Fatal(err)
	}
	e, err := te.client.CreateExecution(t.Context(), &executionspb.CreateExecutionRequest{Parent: te.runner.WorkflowName("sleeper"), Execution: &executionspb.Execution{}})
	if err != nil {
		t.Fatal(err)
	}
	waitJournal(t, te.runner, e.GetName(), "sleep")
	c, err := te.client.CancelExecution(t.Context(), &executionspb.CancelExecutionRequest{Name: e.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	if c.GetState() != executionspb.Execution_CANCELLED || c.GetError() == nil || c.GetResult() != "" || c.GetEndTime() == nil {
		t.Errorf("cancelled execution = %v", c)
	}
	got, err := te.runner.Wait(t.Context(), e.GetName()) // returns only once the goroutine stopped
	if err != nil {
		t.Fatal(err)
	}
	if got.GetState() != executionspb.Execution_CANCELLED {
		t.Errorf("state after wait = %v", got.GetState())
	}
	_, err = te.client.CancelExecution(t.Context(), &executionspb.CancelExecutionRequest{Name: e.GetName()})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("second cancel = %v, want FAILED_PRECONDITION", err)
	}
	_, err = te.client.GetExecution(t.Context(), &executionspb.GetExecutionRequest{Name: e.GetName() + "x"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("get unknown = %v, want NOT_FOUND", err)
	}
}

// TestListExecutions checks paging through the real client's iterator and
// the BASIC default view (executionspb ListExecutionsRequest.view).
func TestListExecutions(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, envOptions{})
	if err := te.runner.Deploy("lister", []byte("main:\n  params: [a]\n  steps:\n    - r:\n        return: ${a}\n")); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for i := range 5 {
		n, err := te.runner.Run(t.Context(), "lister", i)
		if err != nil {
			t.Fatal(err)
		}
		waitDone(t, te.client, n)
		want[n] = true
	}
	it := te.client.ListExecutions(t.Context(), &executionspb.ListExecutionsRequest{Parent: te.runner.WorkflowName("lister"), PageSize: 2})
	got := map[string]bool{}
	for {
		e, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.GetArgument() != "" || e.GetResult() != "" {
			t.Errorf("BASIC view has argument/result: %v", e)
		}
		if e.GetState() != executionspb.Execution_SUCCEEDED {
			t.Errorf("state = %v", e.GetState())
		}
		got[e.GetName()] = true
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("listed executions (-want +got):\n%s", diff)
	}
	full, err := te.client.GetExecution(t.Context(), &executionspb.GetExecutionRequest{Name: sortedKeys(want)[0]})
	if err != nil {
		t.Fatal(err)
	}
	if full.GetArgument() == "" || full.GetResult() != full.GetArgument() {
		t.Errorf("FULL view: argument %q result %q", full.GetArgument(), full.GetResult())
	}
}

// TestResumeInProcess closes a runner while an execution awaits a callback
// and starts a new one on the same Dir: the execution resumes by replay, the
// HTTP announcement and sys.log are not repeated, and the same callback URL
// completes it.
func TestResumeInProcess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	te := newTestEnv(t, envOptions{dir: dir})
	name, url := startAwait(t, te, "resume", awaitWorkflow)
	waitJournal(t, te.runner, name, "await")
	fx := te.fixture
	if err := te.runner.Close(); err != nil {
		t.Fatal(err)
	}

	te2 := newTestEnv(t, envOptions{dir: dir})
	// The second env has its own fixture: the replayed announcement must
	// not reach either.
	path := url[strings.Index(url, "/v1/"):]
	waitJournal(t, te2.runner, name, "await")
	if code := post(t, http.MethodPost, te2.callbacks.URL+path, `{"after":"restart"}`); code != http.StatusOK {
		t.Fatalf("callback after restart = %d", code)
	}
	got := waitDone(t, te2.client, name)
	if got.GetResult() != `{"body":{"after":"restart"},"version":"v1"}` {
		t.Errorf("result = %s", got.GetResult())
	}
	if n := len(fx.hook("/hook/resume")) + len(te2.fixture.hook("/hook/resume")); n != 0 {
		t.Errorf("announcement repeated %d times on replay", n)
	}
	if strings.Contains(te2.logs.text(), "awaiting resume") {
		t.Errorf("sys.log repeated on replay:\n%s", te2.logs.text())
	}
}

// TestConfigValidate checks that Validate reports every problem at once.
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	err := (&Config{MaxSteps: -1, CallbackBaseURL: "ftp://x", Env: map[string]string{
		"": "x", "GOOGLE_CLOUD_PROJECT_ID": "other", "WORKFLOWS_X": "y", "JIT_OK": "fine",
	}}).Validate()
	if err == nil {
		t.Fatal("Validate accepted an empty config")
	}
	// Reserved user variable names, as Google refuses them at deployment:
	// https://cloud.google.com/workflows/docs/use-environment-variables#reserved_names
	for _, s := range []string{"Project", "Location", "Dir", "CallbackBaseURL", "MaxSteps", `Env key ""`, `"GOOGLE_CLOUD_PROJECT_ID" is reserved`, `"WORKFLOWS_X" is reserved`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Validate error %q does not mention %s", err, s)
		}
	}
}

// TestProjectNumberDefault checks that GOOGLE_CLOUD_PROJECT_NUMBER has a
// project number's shape even when the config names none.
func TestProjectNumberDefault(t *testing.T) {
	t.Parallel()
	r, err := New(Config{Project: "p", Location: "l", Dir: t.TempDir(), CallbackBaseURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n := r.cfg.ProjectNumber; !regexp.MustCompile(`^[1-9][0-9]{11}$`).MatchString(n) {
		t.Errorf("ProjectNumber = %q, want 12 digits", n)
	}
}

const yearWorkflow = `
main:
  steps:
    - nap:
        try:
          call: sys.sleep
          args:
            seconds: 31536000
        except:
          as: e
          steps:
            - caught:
                return: "caught"
    - never:
        return: "finished after a year"
`

// TestOneYearLimit runs a workflow on a manual clock that sleeps the longest
// sys.sleep allows: the execution's year ends during the wait (its steps
// before took time too), and it fails with ResourceLimitError that no except
// catches. Facts: maximum execution duration one year, sys.sleep at most
// 31536000 s (https://cloud.google.com/workflows/quotas; docs/google-cloud.md §4).
func TestOneYearLimit(t *testing.T) {
	t.Parallel()
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewManual(start)
	te := newTestEnv(t, envOptions{clock: clk})
	if err := te.runner.Deploy("yearly", []byte(yearWorkflow)); err != nil {
		t.Fatal(err)
	}
	name, err := te.runner.Run(t.Context(), "yearly", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := clk.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(MaxExecutionDuration - time.Second)
	if ex, err := te.client.GetExecution(ctx, &executionspb.GetExecutionRequest{Name: name}); err != nil || ex.GetState() != executionspb.Execution_ACTIVE {
		t.Fatalf("a second before the year: state %v, %v; want ACTIVE", ex.GetState(), err)
	}
	clk.Advance(time.Second)
	got := waitDone(t, te.client, name)
	if got.GetState() != executionspb.Execution_FAILED || !strings.Contains(got.GetError().GetPayload(), "ResourceLimitError") {
		t.Fatalf("state = %v, error = %v; want FAILED with ResourceLimitError", got.GetState(), got.GetError())
	}
	if et := got.GetEndTime().AsTime(); !et.Equal(start.Add(MaxExecutionDuration)) {
		t.Errorf("end time = %v, want the end of the year %v", et, start.Add(MaxExecutionDuration))
	}
}

const clockWorkflow = `
main:
  params: [args]
  steps:
    - start:
        assign:
          - t0: ${sys.now()}
    - nap:
        call: sys.sleep
        args:
          seconds: 3600
    - woke:
        assign:
          - t1: ${sys.now()}
          - tags: null # declared before the tries: an except block's own variables end with it
          - t2: null
    - create:
        call: events.create_callback_endpoint
        result: cb
    - wait:
        try:
          call: events.await_callback
          args:
            callback: ${cb}
            timeout: 60
        except:
          as: e
          steps:
            - timed_out:
                assign:
                  - tags: ${e.tags}
    - flaky:
        try:
          call: http.get
          args:
            url: ${args.base + "/always503/clock"}
        retry:
          predicate: ${http.default_retry_predicate}
          max_retries: 1
          backoff:
            initial_delay: 30
            max_delay: 30
            multiplier: 2
        except:
          as: e2
          steps:
            - gave_up:
                assign:
                  - t2: ${sys.now()}
    - done:
        return: ["${t0}", "${t1}", "${tags}", "${t2}"]
`

// TestClockDrivesWaits runs a workflow on a manual clock: sys.sleep, the
// await_callback timeout and the retry backoff each end exactly when the
// clock is advanced past them, and sys.now reads the clock. Facts:
// docs/google-cloud.md §4 (sys.sleep seconds; await_callback raises TimeoutError after timeout
// seconds; retry backoff initial_delay; sys.now is seconds since the epoch).
func TestClockDrivesWaits(t *testing.T) {
	t.Parallel()
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewManual(start)
	te := newTestEnv(t, envOptions{clock: clk})
	if err := te.runner.Deploy("clocked", []byte(clockWorkflow)); err != nil {
		t.Fatal(err)
	}
	name, err := te.runner.Run(t.Context(), "clocked", map[string]any{"base": te.fixture.base})
	if err != nil {
		t.Fatal(err)
	}
	// The limit only bounds a broken run (a runner that ignores clk).
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for i, d := range []time.Duration{time.Hour, time.Minute, 30 * time.Second} {
		if err := clk.WaitForTimers(ctx, 1); err != nil {
			t.Fatalf("wait %d: %v", i, err)
		}
		// A wait ends no earlier than its deadline on the clock.
		clk.Advance(d - time.Millisecond)
		ex, err := te.client.GetExecution(ctx, &executionspb.GetExecutionRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if ex.GetState() != executionspb.Execution_ACTIVE || clk.Timers() != 1 {
			t.Fatalf("wait %d: a millisecond early, state %v with %d timers armed; want ACTIVE, 1", i, ex.GetState(), clk.Timers())
		}
		clk.Advance(time.Millisecond)
	}
	got := waitDone(t, te.client, name)
	if got.GetState() != executionspb.Execution_SUCCEEDED {
		t.Fatalf("state = %v, error = %v; want SUCCEEDED", got.GetState(), got.GetError())
	}
	var result []any
	if err := json.Unmarshal([]byte(got.GetResult()), &result); err != nil {
		t.Fatal(err)
	}
	t0 := float64(start.Unix())
	want := []any{t0, t0 + 3600, []any{"TimeoutError"}, t0 + 3690}
	if diff := cmp.Diff(want, result); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if st, et := got.GetStartTime().AsTime(), got.GetEndTime().AsTime(); !st.Equal(start) || !et.Equal(start.Add(3690*time.Second)) {
		t.Errorf("start/end time = %v/%v, want the clock's %v/%v", st, et, start, start.Add(3690*time.Second))
	}
}
