package wfrunner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	pubsubapi "cloud.google.com/go/pubsub/v2/apiv1"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	executions "cloud.google.com/go/workflows/executions/apiv1"
	executionspb "cloud.google.com/go/workflows/executions/apiv1/executionspb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/jitpipeline/jit/internal/auth"
	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/local/gcp/localoidc"
	"github.com/jitpipeline/jit/internal/local/gcp/loopback"
)

const (
	testProject  = "test-project"
	testLocation = "us-central1"
	testSA       = "workflow-sa@test-project.iam.gserviceaccount.com"
)

// testEnv is a runner wired to a real executions client, a Pub/Sub fake
// (pstest), a Cloud Tasks fake and a fixture HTTP server.
type testEnv struct {
	runner    *Runner
	client    *executions.Client
	callbacks *httptest.Server
	fixture   *fixture
	pubsub    *pstest.Server
	topics    *pubsubapi.TopicAdminClient
	tasks     *fakeTasks
	logs      *logCapture
	signer    *localoidc.Signer
	deadURL   string
}

type envOptions struct {
	dir       string
	clock     clock.Clock // nil: clock.Real()
	maxSteps  int
	authorize func(*http.Request) error
	env       map[string]string // nil: {"GREETING": "hello"}
}

func newTestEnv(t *testing.T, o envOptions) *testEnv {
	t.Helper()
	ctx := t.Context()
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	signer, err := localoidc.Open("")
	if err != nil {
		t.Fatal(err)
	}
	te := &testEnv{signer: signer, logs: &logCapture{}}

	te.pubsub = pstest.NewServer()
	t.Cleanup(func() { te.pubsub.Close() })
	psOpts := loopback.ClientOptions(te.pubsub.Addr)
	if te.topics, err = pubsubapi.NewTopicAdminClient(ctx, psOpts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { te.topics.Close() })

	te.tasks = &fakeTasks{tasks: map[string]*cloudtaskspb.Task{}}
	tasksSrv, err := loopback.ServeGRPC("127.0.0.1:0", func(s *grpc.Server) { cloudtaskspb.RegisterCloudTasksServer(s, te.tasks) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tasksSrv.Stop)

	te.fixture = newFixture(signer)
	fx := httptest.NewServer(te.fixture)
	t.Cleanup(fx.Close)
	te.fixture.base = fx.URL

	// A port nobody listens on, for ConnectionFailedError.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	te.deadURL = "http://" + l.Addr().String() + "/"
	l.Close()

	var handler atomic.Value
	te.callbacks = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, _ := handler.Load().(http.Handler)
		if h == nil {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(te.callbacks.Close)

	if o.env == nil {
		o.env = map[string]string{"GREETING": "hello"}
	}
	r, err := New(Config{
		Project:           testProject,
		Location:          testLocation,
		ProjectNumber:     "123456789012",
		Dir:               o.dir,
		CallbackBaseURL:   te.callbacks.URL,
		AuthorizeCallback: o.authorize,
		Signer:            signer,
		ServiceAccount:    testSA,
		PubSubOptions:     psOpts,
		TasksOptions:      tasksSrv.ClientOptions(),
		Env:               o.env,
		Clock:             o.clock,
		MaxSteps:          o.maxSteps,
		Logger:            slog.New(te.logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	handler.Store(r.CallbackHandler())
	te.runner = r
	t.Cleanup(func() { r.Close() })
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}

	grpcSrv, err := loopback.ServeGRPC("127.0.0.1:0", r.Register)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(grpcSrv.Stop)
	if te.client, err = executions.NewClient(ctx, grpcSrv.ClientOptions()...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { te.client.Close() })
	return te
}

// waitDone polls an execution through the real client until it leaves
// ACTIVE.
func waitDone(t *testing.T, c *executions.Client, name string) *executionspb.Execution {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		e, err := c.GetExecution(ctx, &executionspb.GetExecutionRequest{Name: name})
		if err != nil {
			t.Fatalf("GetExecution(%s): %v", name, err)
		}
		if e.GetState() != executionspb.Execution_ACTIVE {
			return e
		}
		select {
		case <-ctx.Done():
			t.Fatalf("execution %s still ACTIVE", name)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// fixture is the HTTP service workflows call in tests.
type fixture struct {
	idTokens *auth.Google // the production verifier, with the local keys
	base     string
	mux      *http.ServeMux

	mu     sync.Mutex
	counts map[string]int
	hooks  map[string]chan []byte
}

func newFixture(signer *localoidc.Signer) *fixture {
	idTokens, err := auth.NewGoogle(auth.GoogleConfig{KeysJSON: signer.JWKS()})
	if err != nil {
		panic(err) // the signer's own JWKS always parses
	}
	f := &fixture{idTokens: idTokens, mux: http.NewServeMux(), counts: map[string]int{}, hooks: map[string]chan []byte{}}
	count := func(r *http.Request) int {
		f.mu.Lock()
		defer f.mu.Unlock()
		k := r.URL.Path
		f.counts[k]++
		return f.counts[k]
	}
	writeJSON := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	f.mux.HandleFunc("/flaky/", func(w http.ResponseWriter, r *http.Request) {
		n := count(r)
		if n <= 2 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"attempts": n})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "attempts": n})
	})
	for path, code := range map[string]int{"/always503/": 503, "/always502/": 502, "/count404/": 404} {
		f.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, code, map[string]any{"attempts": count(r)})
		})
	}
	verify := func(w http.ResponseWriter, r *http.Request, aud string) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "no bearer"})
			return
		}
		c, err := f.idTokens.Verify(tok, aud)
		if err != nil {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"email": c.Email, "aud": c.Audience})
	}
	f.mux.HandleFunc("/oidc", func(w http.ResponseWriter, r *http.Request) { verify(w, r, f.base+"/oidc") })
	f.mux.HandleFunc("/oidc-custom", func(w http.ResponseWriter, r *http.Request) { verify(w, r, "https://custom.example") })
	f.mux.HandleFunc("/notfound", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "nope"})
	})
	f.mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		writeJSON(w, http.StatusOK, map[string]any{
			"method": r.Method, "query": r.URL.RawQuery, "content_type": r.Header.Get("Content-Type"),
			"custom": r.Header.Get("X-Custom"), "body": string(b),
		})
	})
	f.mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	// relay calls a callback URL synchronously, as an approver would.
	f.mux.HandleFunc("/relay", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			URL    string          `json:"url"`
			Method string          `json:"method"`
			Body   json.RawMessage `json:"body"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
			return
		}
		var body io.Reader
		if len(in.Body) > 0 {
			body = bytes.NewReader(in.Body)
		}
		req, err := http.NewRequestWithContext(r.Context(), in.Method, in.URL, body)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			writeJSON(w, http.StatusBadGateway, map[string]any{"error": err.Error()})
			return
		}
		resp.Body.Close()
		code := http.StatusOK
		if resp.StatusCode != http.StatusOK {
			code = http.StatusBadGateway
		}
		writeJSON(w, code, map[string]any{"status": resp.StatusCode})
	})
	// hook hands posted bodies to a test goroutine.
	f.mux.HandleFunc("/hook/", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.hook(r.URL.Path) <- b
		writeJSON(w, http.StatusOK, map[string]any{})
	})
	return f
}

func (f *fixture) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

func (f *fixture) hook(path string) chan []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hooks[path] == nil {
		f.hooks[path] = make(chan []byte, 16)
	}
	return f.hooks[path]
}

// fakeTasks is a minimal Cloud Tasks server: CreateTask records the task and
// answers ALREADY_EXISTS for a duplicate name, as Cloud Tasks does.
type fakeTasks struct {
	cloudtaskspb.UnimplementedCloudTasksServer
	mu    sync.Mutex
	tasks map[string]*cloudtaskspb.Task
}

func (f *fakeTasks) CreateTask(_ context.Context, req *cloudtaskspb.CreateTaskRequest) (*cloudtaskspb.Task, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := proto.Clone(req.GetTask()).(*cloudtaskspb.Task)
	if t.Name == "" {
		t.Name = fmt.Sprintf("%s/tasks/%d", req.GetParent(), len(f.tasks)+1)
	}
	if !strings.HasPrefix(t.Name, req.GetParent()+"/tasks/") {
		return nil, status.Errorf(codes.InvalidArgument, "task name %q is not under %q", t.Name, req.GetParent())
	}
	if _, ok := f.tasks[t.Name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "Requested entity already exists")
	}
	t.CreateTime = timestamppb.Now()
	f.tasks[t.Name] = t
	return t, nil
}

// logCapture records log output as "level=L msg=M k=v …" lines, unescaped.
type logCapture struct {
	mu    sync.Mutex
	lines []string
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logCapture) WithGroup(string) slog.Handler            { return l }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "level=%s msg=%s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value.Any())
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}

func (l *logCapture) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// createTopic makes a topic in pstest through the real admin client.
func (te *testEnv) createTopic(t *testing.T, name string) {
	t.Helper()
	if _, err := te.topics.CreateTopic(t.Context(), &pubsubpb.Topic{Name: name}); err != nil {
		t.Fatal(err)
	}
}
