package localtasks_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/jitpipeline/jit/internal/auth"
	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/local/gcp/localoidc"
	"github.com/jitpipeline/jit/internal/local/gcp/localtasks"
)

// capture records what the dispatcher puts on the wire before sending it.
type capture struct {
	mu        sync.Mutex
	keys      map[string]bool // raw header keys, as written
	deadlines []time.Time
	fail      error // when set, fail every request with it
}

func (c *capture) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if c.keys == nil {
		c.keys = make(map[string]bool)
	}
	for k := range req.Header {
		c.keys[k] = true
	}
	if dl, ok := req.Context().Deadline(); ok {
		c.deadlines = append(c.deadlines, dl)
	}
	fail := c.fail
	c.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	return http.DefaultTransport.RoundTrip(req)
}

func TestDispatchRequest(t *testing.T) {
	t.Parallel()
	signer, err := localoidc.Open("")
	if err != nil {
		t.Fatalf("localoidc.Open: %v", err)
	}
	// The production verifier, with the local keys.
	idTokens, err := auth.NewGoogle(auth.GoogleConfig{KeysJSON: signer.JWKS()})
	if err != nil {
		t.Fatal(err)
	}
	wire := &capture{}
	e := newEnv(t, localtasks.Config{Signer: signer, HTTPClient: &http.Client{Transport: wire}}, true)
	e.createQueue(t, nil)
	rcv := newReceiver(t, http.StatusOK)
	const sa = "revoker@p.iam.gserviceaccount.com"

	cases := []struct {
		name     string
		audience string
		wantAud  func(url string) string
	}{
		// "If Audience is empty, the target URI is used." (target.pb.go OidcToken; docs/google-cloud.md §3, §7)
		{"default_audience", "", func(url string) string { return url }},
		{"explicit_audience", "https://revoke.example", func(string) string { return "https://revoke.example" }},
	}
	for i, tc := range cases {
		url := fmt.Sprintf("%s/revoke/%d?x=1", rcv.srv.URL, i)
		task := httpTask("hdr-"+tc.name, url)
		hr := task.GetHttpRequest()
		hr.HttpMethod = cloudtaskspb.HttpMethod_PUT
		hr.Body = []byte(`{"grant":"g1"}`)
		hr.Headers = map[string]string{
			"Content-Type":  "application/json", // not set by Cloud Tasks itself
			"X-Custom":      "kept",
			"User-Agent":    "overridden",
			"X-Google-Foo":  "reserved",
			"authorization": "Bearer forged",
		}
		hr.AuthorizationHeader = &cloudtaskspb.HttpRequest_OidcToken{OidcToken: &cloudtaskspb.OidcToken{ServiceAccountEmail: sa, Audience: tc.audience}}
		created := e.create(t, task)
		e.waitGone(t, created.GetName())

		hits := rcv.all()
		if len(hits) != i+1 {
			t.Fatalf("%s: receiver saw %d requests, want %d", tc.name, len(hits), i+1)
		}
		h := hits[i]
		eta := created.GetScheduleTime()
		// Request shape and headers: target.pb.go HttpRequest and
		// creating-http-target-tasks (docs/google-cloud.md §3).
		got := map[string]string{
			"method":                            h.method,
			"path":                              h.path,
			"body":                              h.body,
			"Content-Type":                      h.header.Get("Content-Type"),
			"X-Custom":                          h.header.Get("X-Custom"),
			"User-Agent":                        h.header.Get("User-Agent"),
			"X-Google-Foo":                      h.header.Get("X-Google-Foo"),
			"X-CloudTasks-QueueName":            h.header.Get("X-CloudTasks-QueueName"),
			"X-CloudTasks-TaskName":             h.header.Get("X-CloudTasks-TaskName"),
			"X-CloudTasks-TaskRetryCount":       h.header.Get("X-CloudTasks-TaskRetryCount"),
			"X-CloudTasks-TaskExecutionCount":   h.header.Get("X-CloudTasks-TaskExecutionCount"),
			"X-CloudTasks-TaskETA":              h.header.Get("X-CloudTasks-TaskETA"),
			"X-CloudTasks-TaskPreviousResponse": h.header.Get("X-CloudTasks-TaskPreviousResponse"),
		}
		want := map[string]string{
			"method":                            "PUT",
			"path":                              fmt.Sprintf("/revoke/%d", i),
			"body":                              `{"grant":"g1"}`,
			"Content-Type":                      "application/json",
			"X-Custom":                          "kept",
			"User-Agent":                        "Google-Cloud-Tasks",
			"X-Google-Foo":                      "",
			"X-CloudTasks-QueueName":            "q",
			"X-CloudTasks-TaskName":             "hdr-" + tc.name,
			"X-CloudTasks-TaskRetryCount":       "0",
			"X-CloudTasks-TaskExecutionCount":   "0",
			"X-CloudTasks-TaskETA":              fmt.Sprintf("%d.%06d", eta.GetSeconds(), eta.GetNanos()/1000),
			"X-CloudTasks-TaskPreviousResponse": "",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: dispatched request (-want, +got):\n%s", tc.name, diff)
		}
		// The OIDC token replaces any Authorization header of the task (target.pb.go
		// HttpRequest.authorization_header); the receiver verifies it the way a
		// real one does (docs/google-cloud.md §7).
		if v := h.header.Values("Authorization"); len(v) != 1 {
			t.Errorf("%s: Authorization values %q, want only the minted token", tc.name, v)
		}
		tok, ok := strings.CutPrefix(h.header.Get("Authorization"), "Bearer ")
		if !ok {
			t.Fatalf("%s: Authorization = %q, want a bearer token", tc.name, h.header.Get("Authorization"))
		}
		claims, err := idTokens.Verify(tok, tc.wantAud(url))
		if err != nil {
			t.Fatalf("%s: Verify: %v", tc.name, err)
		}
		if claims.Email != sa || !claims.EmailVerified {
			t.Errorf("%s: token email %q verified %t, want %q verified", tc.name, claims.Email, claims.EmailVerified, sa)
		}
	}
	// Go canonicalises X-CloudTasks-QueueName to X-Cloudtasks-Queuename; the
	// fake writes the documented spelling as raw keys ([2nd] docs/google-cloud.md §3).
	wire.mu.Lock()
	defer wire.mu.Unlock()
	for _, k := range []string{"X-CloudTasks-QueueName", "X-CloudTasks-TaskName", "X-CloudTasks-TaskRetryCount", "X-CloudTasks-TaskExecutionCount", "X-CloudTasks-TaskETA"} {
		if !wire.keys[k] {
			t.Errorf("raw header key %q was not sent", k)
		}
	}
}

func TestRetryHeadersThenSuccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localtasks.Config{}, true)
	e.createQueue(t, fastRetry(5, 50*time.Millisecond, 100*time.Millisecond))
	rcv := newReceiver(t, http.StatusNotFound, http.StatusInternalServerError, http.StatusOK)
	name := e.create(t, httpTask("flaky", rcv.srv.URL)).GetName()
	e.waitGone(t, name)

	// X-CloudTasks-TaskRetryCount counts earlier attempts; ExecutionCount counts
	// responses except 5xx; TaskPreviousResponse is the previous HTTP code
	// (creating-http-target-tasks, docs/google-cloud.md §3). The retry reason is the
	// google.rpc.Code of the previous attempt (local choice: values undocumented).
	type attempt struct{ Retry, Exec, Prev, Reason string }
	var got []attempt
	for _, h := range rcv.all() {
		got = append(got, attempt{
			h.header.Get("X-CloudTasks-TaskRetryCount"),
			h.header.Get("X-CloudTasks-TaskExecutionCount"),
			h.header.Get("X-CloudTasks-TaskPreviousResponse"),
			h.header.Get("X-CloudTasks-TaskRetryReason"),
		})
	}
	want := []attempt{{"0", "0", "", ""}, {"1", "1", "404", "NOT_FOUND"}, {"2", "1", "500", "INTERNAL"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("attempts (-want, +got):\n%s", diff)
	}
	// A task that ran keeps its name reserved (de-duplication, docs/google-cloud.md §3).
	if _, err := e.client.CreateTask(t.Context(), &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: httpTask("flaky", rcv.srv.URL)}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("CreateTask(name of a task that ran) = %v, want AlreadyExists", err)
	}
}

// Acceptance: a task created twice with the same name runs once.
func TestSameNameRunsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localtasks.Config{}, true)
	e.createQueue(t, nil)
	rcv := newReceiver(t, http.StatusOK)
	// De-duplication: cloudtasks.pb.go CreateTaskRequest.task (docs/google-cloud.md §3).
	first := e.create(t, httpTask("revoke-g1", rcv.srv.URL))
	_, err := e.client.CreateTask(t.Context(), &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: httpTask("revoke-g1", rcv.srv.URL)})
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("second CreateTask = %v, want AlreadyExists", err)
	}
	e.waitGone(t, first.GetName())
	_, err = e.client.CreateTask(t.Context(), &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: httpTask("revoke-g1", rcv.srv.URL)})
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("CreateTask after it ran = %v, want AlreadyExists", err)
	}
	if n := rcv.count(); n != 1 {
		t.Errorf("task ran %d times, want 1", n)
	}
}

func TestAttemptFieldsAndRunTask(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localtasks.Config{}, true)
	e.createQueue(t, fastRetry(10, time.Hour, time.Hour))
	rcv := newReceiver(t, http.StatusInternalServerError, http.StatusOK)
	name := e.create(t, httpTask("fields", rcv.srv.URL)).GetName()

	var got *cloudtaskspb.Task
	eventually(t, "first attempt recorded", func() bool {
		var err error
		got, err = e.get(t, name)
		return err == nil && got.GetResponseCount() == 1
	})
	// dispatch_count, response_count, first_attempt (dispatch_time only) and
	// last_attempt with response_status are visible through GetTask (task.pb.go).
	last := got.GetLastAttempt()
	if got.GetDispatchCount() != 1 || got.GetFirstAttempt().GetDispatchTime() == nil || got.GetFirstAttempt().GetResponseTime() != nil {
		t.Errorf("after one attempt: dispatch_count %d, first_attempt %v; want 1 and only dispatch_time", got.GetDispatchCount(), got.GetFirstAttempt())
	}
	if last.GetResponseStatus().GetCode() != int32(codes.Internal) || last.GetResponseTime() == nil || last.GetDispatchTime() == nil {
		t.Errorf("last_attempt = %v, want response_status INTERNAL with dispatch and response times", last)
	}
	// The retry is scheduled min_backoff (here 1 h) after the failure (queue.pb.go RetryConfig).
	if d := got.GetScheduleTime().AsTime().Sub(last.GetResponseTime().AsTime()); d != time.Hour {
		t.Errorf("retry scheduled %s after the failed attempt, want 1h", d)
	}

	// RunTask forces the dispatch now (cloud_tasks_client.go RunTask).
	if _, err := e.client.RunTask(t.Context(), &cloudtaskspb.RunTaskRequest{Name: name}); err != nil {
		t.Fatalf("RunTask: %v", err)
	}
	e.waitGone(t, name)
	if n := rcv.count(); n != 2 {
		t.Errorf("receiver saw %d attempts, want 2", n)
	}
	// "RunTask returns NOT_FOUND when it is called on a task that has already succeeded."
	if _, err := e.client.RunTask(t.Context(), &cloudtaskspb.RunTaskRequest{Name: name}); status.Code(err) != codes.NotFound {
		t.Errorf("RunTask(succeeded) = %v, want NotFound", err)
	}
}

func TestRetryAfterOn503Only(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localtasks.Config{}, true)
	e.createQueue(t, fastRetry(10, 100*time.Millisecond, time.Hour))
	// 429 and 503 responses make Cloud Tasks honour Retry-After (target.pb.go
	// HttpRequest, docs/google-cloud.md §3); other failures follow the RetryConfig.
	cases := []struct {
		name   string
		status int
		want   time.Duration
	}{
		{"unavailable", http.StatusServiceUnavailable, 2 * time.Hour},
		{"too_many_requests", http.StatusTooManyRequests, 2 * time.Hour},
		{"internal_error", http.StatusInternalServerError, 100 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rcv := newReceiver(t, tc.status)
			rcv.setHeader("Retry-After", "7200")
			name := e.create(t, httpTask("ra-"+tc.name, rcv.srv.URL)).GetName()
			var got *cloudtaskspb.Task
			eventually(t, "first attempt recorded", func() bool {
				var err error
				got, err = e.get(t, name)
				return err == nil && got.GetResponseCount() >= 1
			})
			if tc.want < time.Second {
				// Retry-After ignored: the 100 ms min_backoff retry happens.
				eventually(t, "second attempt", func() bool { return rcv.count() >= 2 })
			} else {
				last := got.GetLastAttempt()
				if d := got.GetScheduleTime().AsTime().Sub(last.GetResponseTime().AsTime()); d != tc.want || got.GetResponseCount() != 1 {
					t.Errorf("retry scheduled %s after response %d, want %s after the first", d, got.GetResponseCount(), tc.want)
				}
			}
			if err := e.client.DeleteTask(t.Context(), &cloudtaskspb.DeleteTaskRequest{Name: name}); err != nil {
				t.Errorf("DeleteTask: %v", err)
			}
		})
	}
}

func TestExhaustedTaskIsDeleted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localtasks.Config{}, true)
	// max_attempts includes the first attempt; with no max_retry_duration the
	// task is deleted after it (queue.pb.go RetryConfig, docs/google-cloud.md §3).
	e.createQueue(t, fastRetry(3, 20*time.Millisecond, 40*time.Millisecond))
	rcv := newReceiver(t, http.StatusInternalServerError)
	name := e.create(t, httpTask("doomed", rcv.srv.URL)).GetName()
	e.waitGone(t, name)
	if n := rcv.count(); n != 3 {
		t.Errorf("receiver saw %d attempts, want max_attempts = 3", n)
	}
	if _, err := e.client.CreateTask(t.Context(), &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: httpTask("doomed", rcv.srv.URL)}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("CreateTask(name of a failed task) = %v, want AlreadyExists", err)
	}
}

func TestTaskRetryConfigOverridesQueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localtasks.Config{}, true)
	e.createQueue(t, fastRetry(10, time.Hour, time.Hour))
	rcv := newReceiver(t, http.StatusInternalServerError)
	// "If present, this overrides the Queue.retry_config for this task." (task.pb.go Task.retry_config)
	task := httpTask("override", rcv.srv.URL)
	task.RetryConfig = fastRetry(2, 20*time.Millisecond, 20*time.Millisecond)
	e.waitGone(t, e.create(t, task).GetName())
	if n := rcv.count(); n != 2 {
		t.Errorf("receiver saw %d attempts, want the task's max_attempts = 2", n)
	}
}

func TestDispatchDeadline(t *testing.T) {
	t.Parallel()
	wire := &capture{fail: context.DeadlineExceeded}
	e := newEnv(t, localtasks.Config{HTTPClient: &http.Client{Transport: wire}}, true)
	e.createQueue(t, fastRetry(10, time.Hour, time.Hour))
	task := httpTask("slow", "http://127.0.0.1:1/slow")
	task.DispatchDeadline = durationpb.New(15 * time.Second)
	name := e.create(t, task).GetName()
	var got *cloudtaskspb.Task
	eventually(t, "attempt recorded", func() bool {
		var err error
		got, err = e.get(t, name)
		return err == nil && got.GetLastAttempt().GetResponseStatus() != nil
	})
	// A worker that does not answer within dispatch_deadline fails the attempt
	// as DEADLINE_EXCEEDED, and the task is retried (task.pb.go, docs/google-cloud.md §3).
	if c := got.GetLastAttempt().GetResponseStatus().GetCode(); c != int32(codes.DeadlineExceeded) || got.GetResponseCount() != 0 {
		t.Errorf("last_attempt code %d, response_count %d; want DEADLINE_EXCEEDED and 0", c, got.GetResponseCount())
	}
	wire.mu.Lock()
	defer wire.mu.Unlock()
	if len(wire.deadlines) != 1 {
		t.Fatalf("saw %d request deadlines, want 1", len(wire.deadlines))
	}
	if d := wire.deadlines[0].Sub(got.GetLastAttempt().GetDispatchTime().AsTime()); d < 15*time.Second-time.Millisecond || d > 25*time.Second {
		t.Errorf("request deadline %s after dispatch, want the task's 15s", d)
	}
}

func TestOIDCWithoutSignerFailsAttempt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localtasks.Config{}, true)
	e.createQueue(t, fastRetry(10, time.Hour, time.Hour))
	rcv := newReceiver(t, http.StatusOK)
	task := httpTask("needs-token", rcv.srv.URL)
	task.GetHttpRequest().AuthorizationHeader = &cloudtaskspb.HttpRequest_OidcToken{OidcToken: &cloudtaskspb.OidcToken{ServiceAccountEmail: "sa@p.iam.gserviceaccount.com"}}
	name := e.create(t, task).GetName()
	var got *cloudtaskspb.Task
	eventually(t, "attempt recorded", func() bool {
		var err error
		got, err = e.get(t, name)
		return err == nil && got.GetLastAttempt().GetResponseStatus() != nil
	})
	if c := got.GetLastAttempt().GetResponseStatus().GetCode(); c != int32(codes.FailedPrecondition) {
		t.Errorf("last_attempt code %d, want FAILED_PRECONDITION", c)
	}
	if n := rcv.count(); n != 0 {
		t.Errorf("receiver saw %d requests without a token, want 0", n)
	}
}

func TestNeverTwoAttemptsAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localtasks.Config{}, true)
	e.createQueue(t, nil)
	rcv := newReceiver(t, http.StatusOK)
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before the receiver closes, even after a failure
	rcv.setBlock(release)
	name := e.create(t, httpTask("busy", rcv.srv.URL)).GetName()
	eventually(t, "attempt in flight", func() bool { return rcv.count() == 1 })

	if _, err := e.client.RunTask(t.Context(), &cloudtaskspb.RunTaskRequest{Name: name}); err != nil {
		t.Fatalf("RunTask(in flight): %v", err)
	}
	// A probe scheduled after RunTask is dispatched in the same or a later pass
	// of the dispatcher, so once it arrives, a second attempt of "busy" would
	// already be counted.
	probe := httpTask("probe", rcv.srv.URL)
	probe.ScheduleTime = timestamppb.New(time.Now())
	e.create(t, probe)
	eventually(t, "probe dispatched", func() bool { return rcv.count() >= 2 })
	got, err := e.get(t, name)
	if err != nil {
		t.Fatalf("GetTask: %v", err)
	}
	if got.GetDispatchCount() != 1 {
		t.Errorf("dispatch_count = %d while the first attempt is in flight, want 1", got.GetDispatchCount())
	}
	unblock()
	e.waitGone(t, name)
	if n := rcv.count(); n != 2 {
		t.Errorf("receiver saw %d requests, want 2 (one per task)", n)
	}
}

// TestDispatchFollowsClock drives the dispatcher with a manual clock: a task
// fires when the clock reaches its schedule_time, not before, and its retry
// waits min_backoff of the same clock. Facts: tasks are dispatched at
// schedule_time, a failed attempt is retried after min_backoff, and
// X-CloudTasks-TaskETA is the schedule time in seconds since the epoch
// (task.pb.go, queue.pb.go RetryConfig, creating-http-target-tasks; docs/google-cloud.md §3).
func TestDispatchFollowsClock(t *testing.T) {
	t.Parallel()
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewManual(start)
	e := newEnv(t, localtasks.Config{Clock: clk}, true)
	e.createQueue(t, fastRetry(5, 10*time.Second, 10*time.Second))
	rcv := newReceiver(t, http.StatusServiceUnavailable, http.StatusOK)
	task := httpTask("later", rcv.srv.URL)
	task.ScheduleTime = timestamppb.New(start.Add(time.Minute))
	name := e.create(t, task).GetName()
	// The limit only bounds a broken run (a dispatcher that ignores clk).
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	// The dispatcher has armed its timer for the task: nothing is due yet.
	if err := clk.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute - time.Millisecond)
	if err := clk.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if n := rcv.count(); n != 0 {
		t.Fatalf("task dispatched %d times before its schedule_time", n)
	}
	clk.Advance(time.Millisecond)
	eventually(t, "first attempt", func() bool { return rcv.count() == 1 })

	// The 503 is retried min_backoff (10 s) of clock time after the attempt.
	var got *cloudtaskspb.Task
	eventually(t, "first attempt recorded", func() bool {
		var err error
		got, err = e.get(t, name)
		return err == nil && got.GetResponseCount() == 1
	})
	if want := start.Add(time.Minute + 10*time.Second); !got.GetScheduleTime().AsTime().Equal(want) {
		t.Errorf("retry scheduled at %v, want %v", got.GetScheduleTime().AsTime(), want)
	}
	if at := got.GetLastAttempt().GetDispatchTime().AsTime(); !at.Equal(start.Add(time.Minute)) {
		t.Errorf("last_attempt.dispatch_time = %v, want the clock's %v", at, start.Add(time.Minute))
	}
	if err := clk.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Second)
	e.waitGone(t, name)

	var etas []string
	for _, h := range rcv.all() {
		etas = append(etas, h.header.Get("X-CloudTasks-TaskETA"))
	}
	want := []string{
		fmt.Sprintf("%d.000000", start.Add(time.Minute).Unix()),
		fmt.Sprintf("%d.000000", start.Add(time.Minute+10*time.Second).Unix()),
	}
	if diff := cmp.Diff(want, etas); diff != "" {
		t.Errorf("X-CloudTasks-TaskETA of the attempts (-want +got):\n%s", diff)
	}
}
