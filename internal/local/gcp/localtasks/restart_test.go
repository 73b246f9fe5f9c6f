package localtasks_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/jitpipeline/jit/internal/local/gcp/durable"
	"github.com/jitpipeline/jit/internal/local/gcp/localtasks"
)

const helperEnv = "LOCALTASKS_HELPER_DIR"

// TestHelperProcess is not a test: re-executed with helperEnv set, it serves
// a localtasks.Server on that data directory until it is killed.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		return
	}
	srv, err := localtasks.New(localtasks.Config{Dir: dir})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Serve("127.0.0.1:0"); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	srv.Start(context.Background())
	if err := durable.WriteFile(filepath.Join(dir, "addr"), []byte(srv.Addr())); err != nil {
		t.Fatalf("write addr: %v", err)
	}
	select {} // until SIGKILL
}

// startChild starts a server process on dir and returns it with its address.
func startChild(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	addrFile := filepath.Join(dir, "addr")
	os.Remove(addrFile)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) // may be dead already; then both fail
	var addr string
	eventually(t, "child server address", func() bool {
		b, err := os.ReadFile(addrFile)
		addr = string(b)
		return err == nil && addr != ""
	})
	return cmd, addr
}

func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no cleanup runs
		t.Fatalf("kill: %v", err)
	}
	cmd.Wait() //nolint:errcheck // "signal: killed" is the expected outcome
}

// Acceptance: scheduled tasks survive kill -9 and fire exactly once on the
// next server; a task whose time passed while the server was down fires at
// once; reserved names survive too.
func TestKillAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary and waits for schedule times; skipped in -short")
	}
	t.Parallel()
	rcv := newReceiver(t, http.StatusOK)
	dir := t.TempDir()

	child1, addr1 := startChild(t, dir)
	c1 := &env{client: newClient(t, addr1)}
	c1.createQueue(t, nil)
	now := time.Now()
	overdue := httpTask("overdue", rcv.srv.URL+"/overdue")
	overdue.ScheduleTime = timestamppb.New(now.Add(2 * time.Second))
	later := httpTask("later", rcv.srv.URL+"/later")
	later.ScheduleTime = timestamppb.New(now.Add(4 * time.Second))
	overdueETA := c1.create(t, overdue).GetScheduleTime().AsTime()
	laterETA := c1.create(t, later).GetScheduleTime().AsTime()
	kill(t, child1)
	if n := rcv.count(); n != 0 {
		t.Fatalf("the killed server dispatched %d tasks before their time", n)
	}

	// Let "overdue" come due while no server runs.
	time.Sleep(time.Until(overdueETA.Add(100 * time.Millisecond)))
	child2, addr2 := startChild(t, dir)
	c2 := &env{client: newClient(t, addr2)}
	c2.waitGone(t, queue+"/tasks/overdue")
	c2.waitGone(t, queue+"/tasks/later")

	hits := rcv.all()
	got := map[string]int{}
	for _, h := range hits {
		got[h.path]++
		eta := h.header.Get("X-CloudTasks-TaskETA")
		switch h.path {
		case "/overdue":
			// Fired on restart with its original schedule_time, not a new one.
			if want := etaHeader(overdueETA); eta != want {
				t.Errorf("overdue task ETA header %q, want %q", eta, want)
			}
		case "/later":
			if h.at.Before(laterETA) {
				t.Errorf("later task fired at %s, before its schedule_time %s", h.at, laterETA)
			}
		}
	}
	if diff := cmp.Diff(map[string]int{"/overdue": 1, "/later": 1}, got); diff != "" {
		t.Errorf("dispatches per task (-want, +got):\n%s", diff)
	}

	// Reserved names survive a kill -9 too (de-duplication, docs/google-cloud.md §3).
	kill(t, child2)
	_, addr3 := startChild(t, dir)
	c3 := &env{client: newClient(t, addr3)}
	_, err := c3.client.CreateTask(t.Context(), &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: httpTask("later", rcv.srv.URL)})
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("CreateTask(name that ran before the restart) = %v, want AlreadyExists", err)
	}
}

// etaHeader formats t as the dispatcher writes X-CloudTasks-TaskETA:
// seconds since the epoch with microseconds (docs/google-cloud.md §3).
func etaHeader(t time.Time) string {
	ts := timestamppb.New(t)
	return fmt.Sprintf("%d.%06d", ts.GetSeconds(), ts.GetNanos()/1000)
}

// TestRestartKeepsState checks, in process, that a clean restart on the same
// Dir restores queues, tasks with every field, and tombstones.
func TestRestartKeepsState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := newEnv(t, localtasks.Config{Dir: dir}, false)
	first.createQueue(t, fastRetry(4, time.Second, time.Minute))
	task := httpTask("kept", "http://127.0.0.1:1/x")
	task.GetHttpRequest().Body = []byte("body")
	task.GetHttpRequest().Headers = map[string]string{"Content-Type": "text/plain"}
	task.ScheduleTime = timestamppb.New(time.Now().Add(time.Hour))
	first.create(t, task)
	first.create(t, httpTask("deleted", "http://127.0.0.1:1/x"))
	if err := first.client.DeleteTask(t.Context(), &cloudtaskspb.DeleteTaskRequest{Name: queue + "/tasks/deleted"}); err != nil {
		t.Fatalf("DeleteTask: %v", err)
	}
	wantQueue, err := first.client.GetQueue(t.Context(), &cloudtaskspb.GetQueueRequest{Name: queue})
	if err != nil {
		t.Fatalf("GetQueue: %v", err)
	}
	wantTask, err := first.get(t, queue+"/tasks/kept")
	if err != nil {
		t.Fatalf("GetTask: %v", err)
	}
	first.srv.Close()

	second := newEnv(t, localtasks.Config{Dir: dir}, false)
	gotQueue, err := second.client.GetQueue(t.Context(), &cloudtaskspb.GetQueueRequest{Name: queue})
	if err != nil {
		t.Fatalf("GetQueue after restart: %v", err)
	}
	if diff := cmp.Diff(wantQueue, gotQueue, protocmp.Transform()); diff != "" {
		t.Errorf("queue after restart (-want, +got):\n%s", diff)
	}
	gotTask, err := second.get(t, queue+"/tasks/kept")
	if err != nil {
		t.Fatalf("GetTask after restart: %v", err)
	}
	if diff := cmp.Diff(wantTask, gotTask, protocmp.Transform()); diff != "" {
		t.Errorf("task after restart (-want, +got):\n%s", diff)
	}
	_, err = second.client.CreateTask(t.Context(), &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: httpTask("deleted", "http://127.0.0.1:1/x")})
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("CreateTask(deleted before restart) = %v, want AlreadyExists", err)
	}
}
