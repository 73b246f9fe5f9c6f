package localtasks_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/local/gcp/localtasks"
)

func TestQueues(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localtasks.Config{}, false)
	ctx := t.Context()

	// CreateQueue fills the RetryConfig fields left unset ("If unspecified when
	// the queue is created, Cloud Tasks will pick the default", queue.pb.go,
	// docs/google-cloud.md §3) and returns them from GetQueue.
	e.createQueue(t, &cloudtaskspb.RetryConfig{MaxAttempts: 7, MinBackoff: durationpb.New(2 * time.Second)})
	got, err := e.client.GetQueue(ctx, &cloudtaskspb.GetQueueRequest{Name: queue})
	if err != nil {
		t.Fatalf("GetQueue: %v", err)
	}
	want := &cloudtaskspb.RetryConfig{
		MaxAttempts:      7,
		MinBackoff:       durationpb.New(2 * time.Second),
		MaxBackoff:       durationpb.New(time.Hour),
		MaxDoublings:     16,
		MaxRetryDuration: durationpb.New(0),
	}
	if diff := cmp.Diff(want, got.GetRetryConfig(), protocmp.Transform()); diff != "" {
		t.Errorf("GetQueue RetryConfig (-want, +got):\n%s", diff)
	}
	if got.GetState() != cloudtaskspb.Queue_RUNNING {
		t.Errorf("GetQueue state = %v, want RUNNING", got.GetState())
	}

	// Error codes as recorded from the real service ([2nd] aertje/cloud-tasks-emulator
	// test/conformance/golden/errors.json): queue/create/already-exists,
	// queue/get/not-found, queue/create/backoff-order, max-attempts-below-minus-one,
	// queue/create/invalid-name.
	errCases := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"create_existing", func() error {
			_, err := e.client.CreateQueue(ctx, &cloudtaskspb.CreateQueueRequest{Parent: location, Queue: &cloudtaskspb.Queue{Name: queue}})
			return err
		}, codes.AlreadyExists},
		{"get_missing", func() error {
			_, err := e.client.GetQueue(ctx, &cloudtaskspb.GetQueueRequest{Name: location + "/queues/nope"})
			return err
		}, codes.NotFound},
		{"min_backoff_above_max", func() error {
			_, err := e.client.CreateQueue(ctx, &cloudtaskspb.CreateQueueRequest{Parent: location, Queue: &cloudtaskspb.Queue{
				Name:        location + "/queues/bad1",
				RetryConfig: &cloudtaskspb.RetryConfig{MinBackoff: durationpb.New(time.Minute), MaxBackoff: durationpb.New(time.Second)},
			}})
			return err
		}, codes.InvalidArgument},
		{"max_attempts_below_minus_one", func() error {
			_, err := e.client.CreateQueue(ctx, &cloudtaskspb.CreateQueueRequest{Parent: location, Queue: &cloudtaskspb.Queue{
				Name: location + "/queues/bad2", RetryConfig: &cloudtaskspb.RetryConfig{MaxAttempts: -2},
			}})
			return err
		}, codes.InvalidArgument},
		{"invalid_queue_id", func() error {
			_, err := e.client.CreateQueue(ctx, &cloudtaskspb.CreateQueueRequest{Parent: location, Queue: &cloudtaskspb.Queue{Name: location + "/queues/under_score"}})
			return err
		}, codes.InvalidArgument},
	}
	for _, tc := range errCases {
		if got := status.Code(tc.call()); got != tc.want {
			t.Errorf("%s: code %v, want %v", tc.name, got, tc.want)
		}
	}

	// EnsureQueue creates a missing queue, and replaces the RetryConfig of an
	// existing one.
	other := location + "/queues/ensured"
	if _, err := e.srv.EnsureQueue(other, nil); err != nil {
		t.Fatalf("EnsureQueue(create): %v", err)
	}
	if _, err := e.srv.EnsureQueue(other, &cloudtaskspb.RetryConfig{MaxAttempts: 3}); err != nil {
		t.Fatalf("EnsureQueue(update): %v", err)
	}
	q, err := e.client.GetQueue(ctx, &cloudtaskspb.GetQueueRequest{Name: other})
	if err != nil || q.GetRetryConfig().GetMaxAttempts() != 3 {
		t.Errorf("GetQueue(ensured) = %v, %v; want max_attempts 3", q, err)
	}

	// ListQueues lists the location's queues, page by page.
	if _, err := e.srv.EnsureQueue("projects/p/locations/elsewhere/queues/x", nil); err != nil {
		t.Fatalf("EnsureQueue: %v", err)
	}
	it := e.client.ListQueues(ctx, &cloudtaskspb.ListQueuesRequest{Parent: location, PageSize: 1})
	var names []string
	for {
		q, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatalf("ListQueues: %v", err)
		}
		names = append(names, q.GetName())
	}
	if diff := cmp.Diff([]string{other, queue}, names); diff != "" {
		t.Errorf("ListQueues names (-want, +got):\n%s", diff)
	}
}

func TestCreateTaskValidation(t *testing.T) {
	t.Parallel()
	clk := clock.NewManual(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	e := newEnv(t, localtasks.Config{Clock: clk}, false)
	e.createQueue(t, nil)
	const url = "http://127.0.0.1:1/run"
	withReq := func(f func(*cloudtaskspb.HttpRequest)) *cloudtaskspb.Task {
		task := httpTask("", url)
		f(task.GetHttpRequest())
		return task
	}
	cases := []struct {
		name   string
		parent string
		task   *cloudtaskspb.Task
		want   codes.Code
	}{
		// "The queue must already exist." (CreateTaskRequest.parent, docs/google-cloud.md §3).
		{"queue_missing", location + "/queues/missing", httpTask("", url), codes.NotFound},
		// TASK_ID is [A-Za-z0-9_-]{1,500} (task.pb.go Task.name, docs/google-cloud.md §3).
		{"task_id_bad_chars", "", httpTask("not a valid id", url), codes.InvalidArgument},
		{"task_id_501_chars", "", httpTask(strings.Repeat("a", 501), url), codes.InvalidArgument},
		{"task_id_500_chars", "", httpTask(strings.Repeat("a", 500), url), codes.OK},
		{"task_id_underscore_hyphen", "", httpTask("a_b-C9", url), codes.OK},
		// The task's queue must be the request's ([2nd] conformance golden task/create/queue-mismatch).
		{"queue_mismatch", "", &cloudtaskspb.Task{Name: location + "/queues/other/tasks/x", MessageType: httpTask("", url).MessageType}, codes.InvalidArgument},
		// Only HTTP targets are served locally.
		{"app_engine", "", &cloudtaskspb.Task{MessageType: &cloudtaskspb.Task_AppEngineHttpRequest{AppEngineHttpRequest: &cloudtaskspb.AppEngineHttpRequest{RelativeUri: "/x"}}}, codes.Unimplemented},
		{"no_target", "", &cloudtaskspb.Task{}, codes.InvalidArgument},
		// Url must start with http:// or https:// and be ≤2083 characters
		// (target.pb.go HttpRequest.url, docs/google-cloud.md §3).
		{"url_empty", "", httpTask("", ""), codes.InvalidArgument},
		{"url_ftp", "", httpTask("", "ftp://example.com/x"), codes.InvalidArgument},
		{"url_2084_chars", "", httpTask("", "http://h/"+strings.Repeat("a", 2084-len("http://h/"))), codes.InvalidArgument},
		{"url_2083_chars", "", httpTask("", "http://h/"+strings.Repeat("a", 2083-len("http://h/"))), codes.OK},
		// "A request body is allowed only if the HTTP method is POST, PUT, or PATCH."
		{"body_on_get", "", withReq(func(r *cloudtaskspb.HttpRequest) { r.HttpMethod, r.Body = cloudtaskspb.HttpMethod_GET, []byte("x") }), codes.InvalidArgument},
		{"body_on_patch", "", withReq(func(r *cloudtaskspb.HttpRequest) { r.HttpMethod, r.Body = cloudtaskspb.HttpMethod_PATCH, []byte("x") }), codes.OK},
		// "The size of the headers must be less than 80KB."
		{"headers_80KB", "", withReq(func(r *cloudtaskspb.HttpRequest) {
			r.Headers = map[string]string{"X-Big": strings.Repeat("a", 80*1024)}
		}), codes.InvalidArgument},
		// dispatch_deadline in [15 s, 30 min] (task.pb.go Task.dispatch_deadline).
		{"deadline_14s", "", &cloudtaskspb.Task{MessageType: httpTask("", url).MessageType, DispatchDeadline: durationpb.New(14 * time.Second)}, codes.InvalidArgument},
		{"deadline_31m", "", &cloudtaskspb.Task{MessageType: httpTask("", url).MessageType, DispatchDeadline: durationpb.New(31 * time.Minute)}, codes.InvalidArgument},
		{"deadline_15s", "", &cloudtaskspb.Task{MessageType: httpTask("", url).MessageType, DispatchDeadline: durationpb.New(15 * time.Second)}, codes.OK},
		// schedule_time at most 30 days ahead (cloudtasks.pb.go, tasks/docs/quotas;
		// docs/google-cloud.md §3). Acceptance: a task scheduled 31 days ahead is refused.
		{"scheduled_31_days_ahead", "", &cloudtaskspb.Task{MessageType: httpTask("", url).MessageType, ScheduleTime: timestamppb.New(clk.Now().Add(31 * 24 * time.Hour))}, codes.InvalidArgument},
		{"scheduled_30_days_ahead", "", &cloudtaskspb.Task{MessageType: httpTask("", url).MessageType, ScheduleTime: timestamppb.New(clk.Now().Add(30 * 24 * time.Hour))}, codes.OK},
		// "The maximum task size is 100KB." (cloud_tasks_client.go CreateTask, docs/google-cloud.md §3).
		{"task_over_100KB", "", withReq(func(r *cloudtaskspb.HttpRequest) { r.Body = make([]byte, 101*1024) }), codes.InvalidArgument},
		// OIDC needs a service account; OAuth targets *.googleapis.com, unreachable locally.
		{"oidc_without_email", "", withReq(func(r *cloudtaskspb.HttpRequest) {
			r.AuthorizationHeader = &cloudtaskspb.HttpRequest_OidcToken{OidcToken: &cloudtaskspb.OidcToken{}}
		}), codes.InvalidArgument},
		{"oauth", "", withReq(func(r *cloudtaskspb.HttpRequest) {
			r.AuthorizationHeader = &cloudtaskspb.HttpRequest_OauthToken{OauthToken: &cloudtaskspb.OAuthToken{ServiceAccountEmail: "sa@p.iam.gserviceaccount.com"}}
		}), codes.Unimplemented},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parent := tc.parent
			if parent == "" {
				parent = queue
			}
			_, err := e.client.CreateTask(t.Context(), &cloudtaskspb.CreateTaskRequest{Parent: parent, Task: tc.task})
			if got := status.Code(err); got != tc.want {
				t.Errorf("CreateTask code = %v (%v), want %v", got, err, tc.want)
			}
		})
	}
}

func TestCreateTaskDefaults(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)
	clk := clock.NewManual(now)
	e := newEnv(t, localtasks.Config{Clock: clk}, false)
	e.createQueue(t, nil)
	const url = "http://127.0.0.1:1/run"
	body := []byte(`{"a":1}`)

	cases := []struct {
		name     string
		schedule *timestamppb.Timestamp
		want     time.Time
	}{
		// schedule_time: unset or in the past → now; truncated to the microsecond
		// (cloudtasks.pb.go CreateTaskRequest.task, task.pb.go; docs/google-cloud.md §3).
		{"unset", nil, now.Truncate(time.Microsecond)},
		{"past", timestamppb.New(now.Add(-time.Hour)), now.Truncate(time.Microsecond)},
		{"future_truncated", timestamppb.New(now.Add(time.Minute + 999*time.Nanosecond)), now.Add(time.Minute + 999*time.Nanosecond).Truncate(time.Microsecond)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			task := httpTask("", url)
			task.GetHttpRequest().Body = body
			task.ScheduleTime = tc.schedule
			got, err := e.client.CreateTask(t.Context(), &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: task, ResponseView: cloudtaskspb.Task_FULL})
			if err != nil {
				t.Fatalf("CreateTask: %v", err)
			}
			// Unnamed tasks get a random id (task.pb.go Task.name).
			if !regexp.MustCompile(`^` + queue + `/tasks/[A-Za-z0-9_-]{1,500}$`).MatchString(got.GetName()) {
				t.Errorf("generated name %q is not a task of %s", got.GetName(), queue)
			}
			want := &cloudtaskspb.Task{
				Name: got.GetName(),
				MessageType: &cloudtaskspb.Task_HttpRequest{HttpRequest: &cloudtaskspb.HttpRequest{
					Url:        url,
					HttpMethod: cloudtaskspb.HttpMethod_POST, // "The default is POST." (target.pb.go)
					Body:       body,
				}},
				ScheduleTime:     timestamppb.New(tc.want),
				CreateTime:       timestamppb.New(now.Truncate(time.Second)), // "truncated to the nearest second" (task.pb.go)
				DispatchDeadline: durationpb.New(10 * time.Minute),           // HTTP default 10 min (task.pb.go)
				View:             cloudtaskspb.Task_FULL,
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("CreateTask (-want, +got):\n%s", diff)
			}
			// BASIC, the default view, omits the body ([2nd] googleapis/nodejs-tasks#525).
			basic, err := e.client.GetTask(t.Context(), &cloudtaskspb.GetTaskRequest{Name: got.GetName()})
			if err != nil {
				t.Fatalf("GetTask: %v", err)
			}
			if basic.GetView() != cloudtaskspb.Task_BASIC || basic.GetHttpRequest().GetBody() != nil {
				t.Errorf("GetTask BASIC = view %v body %q, want BASIC without body", basic.GetView(), basic.GetHttpRequest().GetBody())
			}
		})
	}
}

func TestDedupAndDelete(t *testing.T) {
	t.Parallel()
	clk := clock.NewManual(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	e := newEnv(t, localtasks.Config{Clock: clk, DedupWindow: 10 * time.Minute}, false)
	e.createQueue(t, nil)
	ctx := t.Context()
	const url = "http://127.0.0.1:1/run"
	name := queue + "/tasks/once"

	// De-duplication (cloudtasks.pb.go CreateTaskRequest.task, docs/google-cloud.md §3):
	// the name of an existing task, or of one deleted recently, is ALREADY_EXISTS.
	e.create(t, httpTask("once", url))
	if _, err := e.client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: httpTask("once", url)}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("CreateTask(existing name) = %v, want AlreadyExists", err)
	}
	// DeleteTask works on a scheduled task (cloud_tasks_client.go DeleteTask).
	if err := e.client.DeleteTask(ctx, &cloudtaskspb.DeleteTaskRequest{Name: name}); err != nil {
		t.Fatalf("DeleteTask: %v", err)
	}
	if _, err := e.get(t, name); status.Code(err) != codes.NotFound {
		t.Errorf("GetTask(deleted) = %v, want NotFound", err)
	}
	// A deleted or executed task cannot be deleted again: NOT_FOUND (docs/google-cloud.md §3, assumed).
	if err := e.client.DeleteTask(ctx, &cloudtaskspb.DeleteTaskRequest{Name: name}); status.Code(err) != codes.NotFound {
		t.Errorf("DeleteTask(deleted) = %v, want NotFound", err)
	}
	if err := e.client.DeleteTask(ctx, &cloudtaskspb.DeleteTaskRequest{Name: queue + "/tasks/never"}); status.Code(err) != codes.NotFound {
		t.Errorf("DeleteTask(unknown) = %v, want NotFound", err)
	}
	if _, err := e.client.RunTask(ctx, &cloudtaskspb.RunTaskRequest{Name: name}); status.Code(err) != codes.NotFound {
		t.Errorf("RunTask(deleted) = %v, want NotFound", err)
	}
	clk.Advance(10*time.Minute - time.Second)
	if _, err := e.client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: httpTask("once", url)}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("CreateTask(deleted within the window) = %v, want AlreadyExists", err)
	}
	// The name is released once the dedup window has passed.
	clk.Advance(time.Second)
	if _, err := e.client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: httpTask("once", url)}); err != nil {
		t.Errorf("CreateTask(after the window) = %v, want success", err)
	}
}

func TestListTasksPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localtasks.Config{}, false)
	e.createQueue(t, nil)
	var want []string
	for _, id := range []string{"e", "a", "d", "b", "c"} {
		task := httpTask(id, "http://127.0.0.1:1/run")
		task.GetHttpRequest().Body = []byte("secret")
		e.create(t, task)
	}
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		want = append(want, queue+"/tasks/"+id)
	}
	it := e.client.ListTasks(t.Context(), &cloudtaskspb.ListTasksRequest{Parent: queue})
	pager := iterator.NewPager(it, 2, "")
	var got []string
	pages := 0
	for {
		var page []*cloudtaskspb.Task
		next, err := pager.NextPage(&page)
		if err != nil {
			t.Fatalf("NextPage: %v", err)
		}
		pages++
		for _, task := range page {
			got = append(got, task.GetName())
			if task.GetHttpRequest().GetBody() != nil {
				t.Errorf("ListTasks (BASIC view) returned the body of %s", task.GetName())
			}
		}
		if next == "" {
			break
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListTasks names (-want, +got):\n%s", diff)
	}
	if pages != 3 {
		t.Errorf("ListTasks with page size 2 over 5 tasks gave %d pages, want 3", pages)
	}
	if _, err := e.client.ListTasks(t.Context(), &cloudtaskspb.ListTasksRequest{Parent: location + "/queues/missing"}).Next(); status.Code(err) != codes.NotFound {
		t.Errorf("ListTasks(missing queue) = %v, want NotFound", err)
	}
}
