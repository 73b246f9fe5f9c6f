package localtasks_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	cloudtasks "cloud.google.com/go/cloudtasks/apiv2"
	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/jitpipeline/jit/internal/local/gcp/localtasks"
	"github.com/jitpipeline/jit/internal/local/gcp/loopback"
)

const (
	location = "projects/p/locations/l"
	queue    = location + "/queues/q"
)

// env is a served localtasks.Server with a real Cloud Tasks client.
type env struct {
	srv    *localtasks.Server
	client *cloudtasks.Client
	dir    string
}

// newEnv serves a server on loopback; start also runs its dispatcher.
func newEnv(t *testing.T, cfg localtasks.Config, start bool) *env {
	t.Helper()
	srv, err := localtasks.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Serve("127.0.0.1:0"); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	t.Cleanup(srv.Close)
	if start {
		srv.Start(context.Background())
	}
	return &env{srv: srv, client: newClient(t, srv.Addr()), dir: cfg.Dir}
}

func newClient(t *testing.T, addr string) *cloudtasks.Client {
	t.Helper()
	c, err := cloudtasks.NewClient(t.Context(), loopback.ClientOptions(addr)...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// createQueue creates the test queue with the given retry settings.
func (e *env) createQueue(t *testing.T, rc *cloudtaskspb.RetryConfig) {
	t.Helper()
	_, err := e.client.CreateQueue(t.Context(), &cloudtaskspb.CreateQueueRequest{
		Parent: location,
		Queue:  &cloudtaskspb.Queue{Name: queue, RetryConfig: rc},
	})
	if err != nil {
		t.Fatalf("CreateQueue: %v", err)
	}
}

// fastRetry retries after minB, doubling up to maxB, for attempts attempts.
func fastRetry(attempts int32, minB, maxB time.Duration) *cloudtaskspb.RetryConfig {
	return &cloudtaskspb.RetryConfig{
		MaxAttempts:  attempts,
		MinBackoff:   durationpb.New(minB),
		MaxBackoff:   durationpb.New(maxB),
		MaxDoublings: 1,
	}
}

func httpTask(name, url string) *cloudtaskspb.Task {
	t := &cloudtaskspb.Task{MessageType: &cloudtaskspb.Task_HttpRequest{HttpRequest: &cloudtaskspb.HttpRequest{Url: url}}}
	if name != "" {
		t.Name = queue + "/tasks/" + name
	}
	return t
}

func (e *env) create(t *testing.T, task *cloudtaskspb.Task) *cloudtaskspb.Task {
	t.Helper()
	got, err := e.client.CreateTask(t.Context(), &cloudtaskspb.CreateTaskRequest{Parent: queue, Task: task})
	if err != nil {
		t.Fatalf("CreateTask(%s): %v", task.GetName(), err)
	}
	return got
}

func (e *env) get(t *testing.T, name string) (*cloudtaskspb.Task, error) {
	t.Helper()
	return e.client.GetTask(t.Context(), &cloudtaskspb.GetTaskRequest{Name: name, ResponseView: cloudtaskspb.Task_FULL})
}

// waitGone waits until the task has finished (succeeded or failed for good).
func (e *env) waitGone(t *testing.T, name string) {
	t.Helper()
	eventually(t, "task "+name+" removed", func() bool {
		_, err := e.get(t, name)
		return status.Code(err) == codes.NotFound
	})
}

// eventually polls cond until it holds; the limit only bounds a broken run.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hit is one request received by a receiver.
type hit struct {
	method string
	path   string
	header http.Header
	body   string
	at     time.Time
}

// receiver is an HTTP task target that answers with the statuses given,
// one per request (the last one repeats).
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	hits     []hit
	statuses []int
	header   http.Header // added to every response
	block    chan struct{}
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	t.Helper()
	r := &receiver{statuses: statuses, header: http.Header{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.hits = append(r.hits, hit{method: req.Method, path: req.URL.Path, header: req.Header.Clone(), body: string(body), at: time.Now()})
		n := len(r.hits)
		block := r.block
		code := http.StatusOK
		if len(r.statuses) > 0 {
			code = r.statuses[min(n, len(r.statuses))-1]
		}
		for k, v := range r.header {
			w.Header()[k] = v
		}
		r.mu.Unlock()
		if block != nil && n == 1 {
			<-block
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.hits)
}

func (r *receiver) all() []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hit(nil), r.hits...)
}

func (r *receiver) setHeader(k, v string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.header.Set(k, v)
}

// setBlock makes the first request wait until release is closed.
func (r *receiver) setBlock(release chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.block = release
}
