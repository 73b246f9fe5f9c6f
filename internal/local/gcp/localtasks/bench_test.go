package localtasks_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	cloudtasks "cloud.google.com/go/cloudtasks/apiv2"
	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/jitpipeline/jit/internal/benchref"
	"github.com/jitpipeline/jit/internal/local/gcp/localtasks"
	"github.com/jitpipeline/jit/internal/local/gcp/loopback"
)

// revokeTask is shaped like the pipeline's scheduled revocations: a named
// HTTP POST with an OIDC token and a small JSON body, due weeks ahead, so
// the dispatcher never runs it during a benchmark.
func revokeTask(name string, at time.Time) *cloudtaskspb.Task {
	return &cloudtaskspb.Task{
		Name:         queue + "/tasks/" + name,
		ScheduleTime: timestamppb.New(at),
		MessageType: &cloudtaskspb.Task_HttpRequest{HttpRequest: &cloudtaskspb.HttpRequest{
			Url:     "http://127.0.0.1:1/revoke",
			Headers: map[string]string{"Content-Type": "application/json"},
			Body:    []byte(`{"grant_id":"` + name + `","reason":"end of the granted duration","requested_by":"jit-pipeline"}`),
			AuthorizationHeader: &cloudtaskspb.HttpRequest_OidcToken{OidcToken: &cloudtaskspb.OidcToken{
				ServiceAccountEmail: "jit-revoke@p.iam.gserviceaccount.com",
			}},
		}},
	}
}

// tasksBench is a persisted server holding existing tasks, and a client.
type tasksBench struct {
	client *cloudtasks.Client
	next   int
}

func newTasksBench(b *testing.B, existing int) *tasksBench {
	b.Helper()
	srv, err := localtasks.New(localtasks.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Serve("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	srv.Start(context.Background())
	c, err := cloudtasks.NewClient(context.Background(), loopback.ClientOptions(srv.Addr())...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if _, err := c.CreateQueue(context.Background(), &cloudtaskspb.CreateQueueRequest{Parent: location, Queue: &cloudtaskspb.Queue{Name: queue}}); err != nil {
		b.Fatal(err)
	}
	tb := &tasksBench{client: c}
	for range existing {
		tb.create(b)
	}
	return tb
}

func (tb *tasksBench) create(b *testing.B) {
	tb.next++
	at := time.Now().Add(20 * 24 * time.Hour)
	name := fmt.Sprintf("grant-%06d-revoke", tb.next)
	if _, err := tb.client.CreateTask(context.Background(), &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: revokeTask(name, at)}); err != nil {
		b.Fatalf("CreateTask: %v", err)
	}
}

// BenchmarkTableTasksCreate measures CreateTask, through the real client,
// on a persisted server that already holds 10 and 1,000 scheduled tasks.
// "ratio" is the cost at 1,000 over the cost at 10: near 1 means the cost
// of a change does not grow with the store.
func BenchmarkTableTasksCreate(b *testing.B) {
	small, large := newTasksBench(b, 10), newTasksBench(b, 1000)
	benchref.Sizes(b, func() { small.create(b) }, func() { large.create(b) })
}
