package localtasks_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/jitpipeline/jit/internal/local/gcp/localtasks"
)

// The bytes one mutation adds to the state on disk do not grow with the
// number of tasks already scheduled (issue 14: 1,000 active grants are
// 1,000 scheduled revocations, and each new one used to rewrite them all).
func TestBytesPerChangeFlat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// mutate changes the task name and returns the bytes it wrote.
		mutate func(t *testing.T, e *env, name string) int64
	}{
		{name: "create", mutate: func(t *testing.T, e *env, name string) int64 {
			before := journalSize(t, e)
			e.create(t, revokeTask(name, time.Now().Add(24*time.Hour)))
			return journalSize(t, e) - before
		}},
		{name: "delete", mutate: func(t *testing.T, e *env, name string) int64 {
			e.create(t, revokeTask(name, time.Now().Add(24*time.Hour)))
			before := journalSize(t, e)
			if err := e.client.DeleteTask(t.Context(), &cloudtaskspb.DeleteTaskRequest{Name: queue + "/tasks/" + name}); err != nil {
				t.Fatalf("DeleteTask: %v", err)
			}
			return journalSize(t, e) - before
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			grow := func(existing int) int64 {
				e := newEnv(t, localtasks.Config{Dir: t.TempDir()}, false)
				e.createQueue(t, nil)
				for i := range existing {
					e.create(t, revokeTask(taskName(i), time.Now().Add(24*time.Hour)))
				}
				return tc.mutate(t, e, "grant-new-revoke")
			}
			small, large := grow(10), grow(1000)
			if small <= 0 || large > small+small/10 {
				t.Errorf("one %s wrote %d bytes with 10 tasks and %d with 1,000; want about the same", tc.name, small, large)
			}
		})
	}
}

func taskName(i int) string { return fmt.Sprintf("grant-%06d-revoke", i) }

func journalSize(t *testing.T, e *env) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(e.dir, "cloudtasks.journal"))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// A data directory written by an earlier version, one cloudtasks.json
// holding everything, still loads, and is moved into the journal.
func TestLoadsLegacyStateFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	legacy := `{
  "queues": [{"name": "` + queue + `", "retryConfig": {"maxAttempts": 3}, "state": "RUNNING"}],
  "tasks": [{"task": {"name": "` + queue + `/tasks/kept", "httpRequest": {"url": "http://127.0.0.1:1/x", "httpMethod": "POST"},
     "scheduleTime": "2099-01-01T00:00:00Z", "createTime": "2026-01-01T00:00:00Z", "dispatchCount": 2}, "executions": 1, "previous_response": 503}],
  "tombstones": {"` + queue + `/tasks/gone": "2999-01-01T00:00:00Z"}
}`
	if err := os.WriteFile(filepath.Join(dir, "cloudtasks.json"), []byte(legacy), 0o600); err != nil {
		t.Fatal(err)
	}
	for round := range 2 { // the second start reads the journal alone
		e := newEnv(t, localtasks.Config{Dir: dir}, false)
		got, err := e.get(t, queue+"/tasks/kept")
		if err != nil {
			t.Fatalf("round %d: GetTask: %v", round, err)
		}
		want := &cloudtaskspb.Task{Name: queue + "/tasks/kept", ScheduleTime: timestamppb.New(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)), DispatchCount: 2}
		if diff := cmp.Diff(want.GetScheduleTime().AsTime(), got.GetScheduleTime().AsTime()); diff != "" || got.GetDispatchCount() != 2 {
			t.Errorf("round %d: task = %v, want %v", round, got, want)
		}
		_, err = e.client.CreateTask(t.Context(), &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: httpTask("gone", "http://127.0.0.1:1/x")})
		if status.Code(err) != codes.AlreadyExists {
			t.Errorf("round %d: CreateTask(reserved name) = %v, want AlreadyExists", round, err)
		}
		e.srv.Close()
		if _, err := os.Stat(filepath.Join(dir, "cloudtasks.json")); !os.IsNotExist(err) {
			t.Errorf("round %d: cloudtasks.json still there: %v", round, err)
		}
	}
}
