// Package localtasks is the embedded Google Cloud's Cloud Tasks: an
// in-process gRPC server for google.cloud.tasks.v2.CloudTasks that production
// code reaches through the real client (cloud.google.com/go/cloudtasks/apiv2),
// plus a dispatcher that sends due HTTP tasks to their URL.
//
// It is deliberately as strict as the real service (docs/google-cloud.md §3): the
// parent queue must exist, names are validated, task names are de-duplicated
// for a window after the task ran or was deleted, schedule_time may be at most
// 30 days ahead, only HTTP targets are accepted, and a failed attempt is
// retried per the queue's RetryConfig. Every mutation is appended to a
// durable.Journal under Dir, one entry per queue, task and reserved name, so
// scheduled tasks and reserved names survive kill -9 and a mutation costs
// the same however many tasks are scheduled.
//
// Local divergences, on purpose:
//   - RetryConfig durations keep sub-second precision (the real service
//     truncates them to seconds), so tests can use a 100 ms min_backoff.
//   - RateLimits are stored and returned but not enforced; concurrency is
//     bounded per server by Config.MaxConcurrentDispatches.
//   - App Engine targets and OAuth tokens are refused with UNIMPLEMENTED.
//   - RunTask on a task whose attempt is in flight does not start a second,
//     concurrent attempt: the task is never dispatched twice at once.
//   - A Retry-After on a 429/503 response may push the retry beyond
//     max_backoff; the real service's exact rule is not documented.
//   - The dispatcher scans all tasks on each wake-up (one timer for the
//     earliest, no polling): fine for the tens of tasks of a local pipeline.
package localtasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/local/gcp/durable"
	"github.com/jitpipeline/jit/internal/local/gcp/localoidc"
	"github.com/jitpipeline/jit/internal/local/gcp/loopback"
)

// DefaultDedupWindow is how long a task name stays reserved locally after the
// task ran or was deleted. The real service reserves it for "up to 24 hours"
// (docs/google-cloud.md §3); an hour keeps the rule visible without making local names
// unusable for a day.
const DefaultDedupWindow = time.Hour

// DefaultMaxConcurrentDispatches bounds the attempts in flight at once.
const DefaultMaxConcurrentDispatches = 16

// Config configures a Server.
type Config struct {
	// Dir is the data directory; the state lives in Dir/cloudtasks.journal
	// (a Dir/cloudtasks.json of earlier versions is moved into it).
	// Empty means memory only.
	Dir string
	// Signer mints the OIDC ID tokens of tasks with an oidc_token. When nil,
	// such tasks are still accepted, but each attempt fails before any
	// request is sent (logged at ERROR, status FAILED_PRECONDITION) and is
	// retried per the RetryConfig.
	Signer *localoidc.Signer
	// HTTPClient sends the task requests. Default: a new http.Client; the
	// dispatch deadline is applied through the request context.
	HTTPClient *http.Client
	// Clock is the time of schedule times, attempt timestamps, retry
	// backoff, the retention limit and the dedup window, and the dispatcher
	// waits on its timers: a clock.Scaled makes tasks fire early in real
	// time but on time in virtual time. Default clock.Real(). The dispatch
	// deadline of an attempt stays real time: it bounds real work.
	Clock clock.Clock
	// DedupWindow is how long a name stays reserved after its task ran or
	// was deleted. Zero means DefaultDedupWindow.
	DedupWindow time.Duration
	// DefaultRetry fills the fields a queue's RetryConfig leaves unset.
	// Nil means DefaultRetryConfig().
	DefaultRetry *cloudtaskspb.RetryConfig
	// MaxConcurrentDispatches bounds attempts in flight. Zero means
	// DefaultMaxConcurrentDispatches.
	MaxConcurrentDispatches int
	// Logger receives dispatch logs. Nil discards them.
	Logger *slog.Logger
}

// Validate reports every problem with the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.DedupWindow < 0 {
		errs = append(errs, fmt.Errorf("DedupWindow must not be negative, got %s", c.DedupWindow))
	}
	if c.MaxConcurrentDispatches < 0 {
		errs = append(errs, fmt.Errorf("MaxConcurrentDispatches must not be negative, got %d", c.MaxConcurrentDispatches))
	}
	if err := validateRetryConfig(c.DefaultRetry); err != nil {
		errs = append(errs, fmt.Errorf("DefaultRetry: %w", err))
	}
	return errors.Join(errs...)
}

// Server is the local Cloud Tasks service and its dispatcher.
type Server struct {
	cloudtaskspb.UnimplementedCloudTasksServer

	dir         string
	signer      *localoidc.Signer
	client      *http.Client
	clock       clock.Clock
	dedupWindow time.Duration
	retry       *cloudtaskspb.RetryConfig
	log         *slog.Logger

	sem  chan struct{} // one slot per attempt in flight
	wake chan struct{} // nudges the dispatch loop; buffered, never blocks

	mu         sync.Mutex
	queues     map[string]*cloudtaskspb.Queue
	tasks      map[string]*task
	tombstones map[string]time.Time // task name → when it may be reused
	expiry     []tombstone          // the tombstones, oldest first, for pruning
	journal    *durable.Journal     // nil without Dir

	startOnce sync.Once
	stop      context.CancelFunc
	wg        sync.WaitGroup
	grpc      *loopback.GRPCServer
}

// task is a task in a queue with the bookkeeping the API does not show.
type task struct {
	pb    *cloudtaskspb.Task // FULL view, authoritative
	queue string
	// executions counts responses other than 5xx, sent as
	// X-CloudTasks-TaskExecutionCount (docs/google-cloud.md §3 headers).
	executions int32
	// prevStatus and prevReason describe the previous attempt, sent as
	// X-CloudTasks-TaskPreviousResponse and X-CloudTasks-TaskRetryReason.
	prevStatus int
	prevReason string
	running    bool // an attempt is in flight; not persisted
}

// New creates a server and loads its state from cfg.Dir.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid localtasks config: %w", err)
	}
	s := &Server{
		dir:         cfg.Dir,
		signer:      cfg.Signer,
		client:      cfg.HTTPClient,
		clock:       cfg.Clock,
		dedupWindow: cfg.DedupWindow,
		retry:       mergeRetry(cfg.DefaultRetry, DefaultRetryConfig()),
		log:         cfg.Logger,
		wake:        make(chan struct{}, 1),
		queues:      make(map[string]*cloudtaskspb.Queue),
		tasks:       make(map[string]*task),
		tombstones:  make(map[string]time.Time),
	}
	if s.client == nil {
		s.client = &http.Client{}
	}
	if s.clock == nil {
		s.clock = clock.Real()
	}
	if s.dedupWindow == 0 {
		s.dedupWindow = DefaultDedupWindow
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	n := cfg.MaxConcurrentDispatches
	if n == 0 {
		n = DefaultMaxConcurrentDispatches
	}
	s.sem = make(chan struct{}, n)
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// Register adds the CloudTasks service to a gRPC server.
func (s *Server) Register(g *grpc.Server) { cloudtaskspb.RegisterCloudTasksServer(g, s) }

// Serve serves the API on a loopback address ("" or "127.0.0.1:0" for any
// free port) until Close. Clients connect with ClientOptions.
func (s *Server) Serve(addr string) error {
	g, err := loopback.ServeGRPC(addr, s.Register)
	if err != nil {
		return fmt.Errorf("failed to serve cloud tasks: %w", err)
	}
	s.mu.Lock()
	s.grpc = g
	s.mu.Unlock()
	return nil
}

// Addr is the address Serve listens on, or "" before Serve.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grpc == nil {
		return ""
	}
	return s.grpc.Addr
}

// ClientOptions aim cloudtasks.NewClient at the address Serve listens on.
func (s *Server) ClientOptions() []option.ClientOption { return loopback.ClientOptions(s.Addr()) }

// Start runs the dispatcher until ctx ends or Close is called. Calling it
// again has no effect.
func (s *Server) Start(ctx context.Context) {
	s.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(ctx)
		s.mu.Lock()
		s.stop = cancel
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.loop(ctx)
		}()
	})
}

// Close stops the dispatcher and the gRPC server. Attempts in flight are
// cancelled and their outcome is not recorded, as after a crash: the task is
// attempted again by the next server on the same Dir.
func (s *Server) Close() {
	s.mu.Lock()
	stop, g := s.stop, s.grpc
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.wg.Wait()
	if g != nil {
		g.Stop()
	}
	if s.journal != nil {
		_ = s.journal.Close() // every change is already synced
	}
}

// EnsureQueue creates the queue if it does not exist, so the embedded
// pipeline can declare its queues in code. When the queue exists and rc is
// not nil, its RetryConfig is replaced by rc (merged over the defaults).
func (s *Server) EnsureQueue(name string, rc *cloudtaskspb.RetryConfig) (*cloudtaskspb.Queue, error) {
	if err := checkQueueName(name); err != nil {
		return nil, err
	}
	if err := validateRetryConfig(rc); err != nil {
		return nil, fmt.Errorf("invalid retry config for %s: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[name]
	switch {
	case !ok:
		q = s.newQueue(&cloudtaskspb.Queue{Name: name, RetryConfig: rc})
		s.queues[name] = q
	case rc != nil:
		q.RetryConfig = mergeRetry(rc, s.retry)
	default:
		return proto.CloneOf(q), nil
	}
	if err := s.saveLocked(change{queues: []string{name}}); err != nil {
		return nil, err
	}
	return proto.CloneOf(q), nil
}

// poke wakes the dispatch loop without blocking.
func (s *Server) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
