// Package wfrunner is the local Cloud Workflows runner of the embedded Google
// Cloud. It executes the same YAML definitions as production (a strict subset
// of the Workflows language: anything outside it fails at Load, loudly), and
// serves the Executions API over gRPC so that callers use the real
// cloud.google.com/go/workflows/executions/apiv1 client.
//
// Durability: every execution is kept in Config.Dir/executions.journal (a
// durable.Journal shared by all executions) as entries: the source snapshot
// and argument, the outcome once it ends, each callback endpoint, and one
// entry per journaled step — every non-deterministic
// or side-effecting result (sys.now values, HTTP responses, connector
// results, callback endpoints and payloads, sleep deadlines, sys.log calls,
// raised errors). A step appends its own entry, one fsync, whatever the
// length of the execution. After a restart, Start resumes each ACTIVE execution by
// replaying its source against the journal: journaled results are returned
// instead of redoing the effects, sleeps keep their deadlines, awaits keep
// their deadline and callback URL. The consequence is at-least-once effects:
// an effect done just before a crash, before its journal entry was written,
// is done again on resume — as with Cloud Workflows' own retries, the
// targets must be idempotent.
package wfrunner

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/api/option"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	executionspb "cloud.google.com/go/workflows/executions/apiv1/executionspb"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/local/gcp/durable"
	"github.com/jitpipeline/jit/internal/local/gcp/localoidc"
	"github.com/jitpipeline/jit/internal/local/gcp/wfexpr"
)

// Config configures a Runner.
type Config struct {
	// Project and Location form the parent of every workflow:
	// projects/{Project}/locations/{Location}/workflows/{name}.
	Project  string
	Location string
	// ProjectNumber is what GOOGLE_CLOUD_PROJECT_NUMBER returns; default a
	// stable 12-digit number derived from Project.
	ProjectNumber string
	// Dir holds deployed definitions and execution journals. Required.
	Dir string
	// CallbackBaseURL is the scheme and host callback URLs are built on, e.g.
	// "http://127.0.0.1:8080"; the runner serves the path part with
	// CallbackHandler. Callbacks are matched by path only, so the base may
	// change across restarts. Required.
	CallbackBaseURL string
	// AuthorizeCallback, if set, vets every callback request: an error that
	// wraps ErrUnauthenticated answers 401 (no OAuth 2.0 access token), any
	// other 403 (the caller lacks workflows.callbacks.send). Nil allows every
	// request. On Google Cloud a callback needs an access token of an
	// identity with workflows.callbacks.send (docs/google-cloud.md §4,
	// https://cloud.google.com/workflows/docs/creating-callback-endpoints);
	// the embedded pipeline wires that check here.
	AuthorizeCallback func(*http.Request) error
	// Signer mints the OIDC tokens of http.* calls with auth type OIDC.
	Signer *localoidc.Signer
	// ServiceAccount is the email the workflow calls as (OIDC tokens).
	ServiceAccount string
	// HTTPClient makes http.* calls; default: a client without timeout
	// (each call has its own).
	HTTPClient *http.Client
	// PubSubOptions and TasksOptions aim the connector clients at the local
	// Pub/Sub and Cloud Tasks servers. A connector without options raises
	// ConnectionFailedError.
	PubSubOptions []option.ClientOption
	TasksOptions  []option.ClientOption
	// Env are the user variables sys.get_env returns (beside the built-in
	// GOOGLE_CLOUD_* ones). As on Google, a key may not be empty or start
	// with GOOGLE_ or WORKFLOWS_ —
	// https://cloud.google.com/workflows/docs/use-environment-variables#reserved_names.
	Env map[string]string
	// Clock is the time of sys.now, execution and callback timestamps, and
	// the deadlines of sys.sleep, sys.sleep_until, await_callback timeouts
	// and retry backoff, which are journaled in its time and waited for on
	// its timers: a clock.Scaled runs workflows faster than real time with
	// real-looking values. Default clock.Real(). http.* timeouts stay real
	// time: they bound real work.
	Clock clock.Clock
	// MaxSteps is the step budget of one execution; default DefaultMaxSteps.
	// Exceeding it raises ResourceLimitError.
	MaxSteps int
	// Logger receives sys.log output and runner diagnostics; default
	// slog.Default().
	Logger *slog.Logger
}

// Validate reports every configuration problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Project == "" {
		errs = append(errs, errors.New("Project is required"))
	}
	if c.Location == "" {
		errs = append(errs, errors.New("Location is required"))
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("Dir is required"))
	}
	if u, err := url.Parse(c.CallbackBaseURL); c.CallbackBaseURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("CallbackBaseURL must be an absolute http(s) URL, got %q", c.CallbackBaseURL))
	}
	if c.Signer != nil && c.ServiceAccount == "" {
		errs = append(errs, errors.New("ServiceAccount is required with a Signer"))
	}
	if c.MaxSteps < 0 {
		errs = append(errs, fmt.Errorf("MaxSteps must not be negative, got %d", c.MaxSteps))
	}
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		if k == "" || strings.HasPrefix(k, "GOOGLE_") || strings.HasPrefix(k, "WORKFLOWS_") {
			errs = append(errs, fmt.Errorf("Env key %q is reserved: keys may not be empty or start with GOOGLE_ or WORKFLOWS_", k))
		}
	}
	return errors.Join(errs...)
}

// Runner deploys workflows and runs their executions.
type Runner struct {
	executionspb.UnimplementedExecutionsServer

	cfg    Config
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	workflows map[string]*deployed
	execs     map[string]*execution // by full resource name
	started   bool
	journal   *durable.Journal // every execution, see store.go

	conn connectors
}

// deployed is the current revision of a workflow.
type deployed struct {
	Name       string    `json:"name"`
	Revision   int       `json:"revision"`
	RevisionID string    `json:"revisionId"`
	Source     string    `json:"source"`
	UpdateTime time.Time `json:"updateTime"`
	wf         *Workflow
}

var errShutdown = errors.New("runner closed")

// ErrUnauthenticated is what AuthorizeCallback wraps for a request without
// a valid OAuth 2.0 access token.
var ErrUnauthenticated = errors.New("request had invalid authentication credentials: expected an OAuth 2 access token")

// New creates a runner and loads the deployed workflows from cfg.Dir.
// Executions resume only when Start is called.
func New(cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("failed to validate config: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.MaxSteps == 0 {
		cfg.MaxSteps = DefaultMaxSteps
	}
	if cfg.ProjectNumber == "" {
		sum := sha256.Sum256([]byte(cfg.Project))
		n := uint64(0)
		for _, b := range sum[:8] {
			n = n<<8 | uint64(b)
		}
		cfg.ProjectNumber = strconv.FormatUint(100000000000+n%900000000000, 10)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	cfg.CallbackBaseURL = strings.TrimRight(cfg.CallbackBaseURL, "/")
	r := &Runner{cfg: cfg, workflows: map[string]*deployed{}, execs: map[string]*execution{}}
	r.ctx, r.cancel = context.WithCancelCause(context.Background())
	entries, err := os.ReadDir(filepath.Join(cfg.Dir, "workflows"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("failed to read deployed workflows: %w", err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		var d deployed
		if _, err := durable.ReadJSON(filepath.Join(cfg.Dir, "workflows", e.Name()), &d); err != nil {
			return nil, fmt.Errorf("failed to read deployed workflow: %w", err)
		}
		if d.wf, err = Load(d.Name, []byte(d.Source)); err != nil {
			return nil, fmt.Errorf("failed to reload deployed workflow %q: %w", d.Name, err)
		}
		r.workflows[d.Name] = &d
	}
	if r.journal, err = durable.OpenJournal(filepath.Join(cfg.Dir, journalFile)); err != nil {
		return nil, fmt.Errorf("failed to open the executions journal: %w", err)
	}
	return r, nil
}

var idPattern = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_-]{0,127}$`)

// Deploy loads and validates source and makes it the workflow's current
// revision. Running executions keep the source they started with.
func (r *Runner) Deploy(name string, source []byte) error {
	if !idPattern.MatchString(name) {
		return fmt.Errorf("failed to deploy: invalid workflow id %q", name)
	}
	wf, err := Load(name, source)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d := &deployed{Name: name, Revision: 1, Source: string(source), UpdateTime: r.cfg.Clock.Now().UTC(), wf: wf}
	if old := r.workflows[name]; old != nil {
		if old.Source == d.Source {
			return nil
		}
		d.Revision = old.Revision + 1
	}
	sum := sha256.Sum256(source)
	d.RevisionID = fmt.Sprintf("%06d-%s", d.Revision, hex.EncodeToString(sum[:])[:3])
	if err := durable.WriteJSON(filepath.Join(r.cfg.Dir, "workflows", name+".json"), d); err != nil {
		return fmt.Errorf("failed to deploy %q: %w", name, err)
	}
	r.workflows[name] = d
	return nil
}

// WorkflowName is the resource name of a workflow of this runner.
func (r *Runner) WorkflowName(workflow string) string {
	return fmt.Sprintf("projects/%s/locations/%s/workflows/%s", r.cfg.Project, r.cfg.Location, workflow)
}

// Start resumes every ACTIVE execution found in Dir. Call it once, after
// New and Deploy.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("failed to start: already started")
	}
	r.started = true
	r.mu.Unlock()
	if err := r.migrateLegacy(); err != nil {
		return fmt.Errorf("failed to start: %w", err)
	}
	recs, err := readRecords(r.journal)
	if err != nil {
		return fmt.Errorf("failed to start: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(recs)) {
		if err := r.adopt(ctx, recs[name]); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner) adopt(_ context.Context, rec *record) error {
	ex := r.newExecution(rec)
	r.mu.Lock()
	r.execs[rec.Name] = ex
	r.mu.Unlock()
	if rec.State != stateActive {
		close(ex.done)
		return nil
	}
	wf, err := Load(rec.Workflow, []byte(rec.Source))
	if err != nil {
		// The snapshot loaded when the execution started; a runner that no
		// longer supports it fails the execution rather than guessing.
		ex.wf = &Workflow{Name: rec.Workflow}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer close(ex.done)
			ex.finish(nil, fmt.Errorf("failed to reload source: %w", err))
		}()
		return nil
	}
	ex.wf = wf
	r.launch(ex)
	r.cfg.Logger.Info("resuming workflow execution", "execution", rec.Name, "journal_entries", len(rec.Journal))
	return nil
}

// Close stops every running execution without changing its state, so a
// later runner on the same Dir resumes it, and closes connector clients.
func (r *Runner) Close() error {
	r.cancel(errShutdown)
	r.wg.Wait()
	// Every change is synced as it is made; a callback arriving after this
	// is refused.
	return errors.Join(r.conn.close(), r.journal.Close())
}

// Run starts an execution of workflow with argument (encoded as JSON; nil
// means no argument) and returns the execution's resource name.
func (r *Runner) Run(_ context.Context, workflow string, argument any) (string, error) {
	arg := ""
	if argument != nil {
		b, err := json.Marshal(argument)
		if err != nil {
			return "", fmt.Errorf("failed to encode argument: %w", err)
		}
		arg = string(b)
	}
	ex, err := r.create(workflow, arg)
	if err != nil {
		return "", err
	}
	return ex.rec.Name, nil
}

// Wait blocks until the execution has finished and returns it.
func (r *Runner) Wait(ctx context.Context, name string) (*executionspb.Execution, error) {
	ex := r.lookup(name)
	if ex == nil {
		return nil, fmt.Errorf("failed to wait: %w: %s", ErrNotFound, name)
	}
	select {
	case <-ex.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("failed to wait for %s: %w", name, ctx.Err())
	}
	return ex.proto(executionspb.ExecutionView_FULL), nil
}

// ErrNotFound reports an unknown workflow or execution.
var ErrNotFound = errors.New("not found")

// ErrInvalidArgument reports a bad execution argument.
var ErrInvalidArgument = errors.New("invalid argument")

func (r *Runner) lookup(name string) *execution {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.execs[name]
}

func (r *Runner) create(workflow, argument string) (*execution, error) {
	if len(argument) > MaxArgumentBytes {
		return nil, fmt.Errorf("%w: the execution argument is %d bytes, over the %d-byte limit", ErrInvalidArgument, len(argument), MaxArgumentBytes)
	}
	if argument != "" {
		if _, err := decodeJSON([]byte(argument)); err != nil {
			return nil, fmt.Errorf("%w: the execution argument is not JSON: %w", ErrInvalidArgument, err)
		}
	}
	r.mu.Lock()
	d := r.workflows[workflow]
	r.mu.Unlock()
	if d == nil {
		return nil, fmt.Errorf("%w: workflow %s", ErrNotFound, r.WorkflowName(workflow))
	}
	id := newID()
	now := r.cfg.Clock.Now().UTC()
	rec := &record{
		Name:       r.WorkflowName(workflow) + "/executions/" + id,
		Workflow:   workflow,
		RevisionID: d.RevisionID,
		Source:     d.Source,
		Argument:   argument,
		State:      stateActive,
		StartTime:  now,
		Callbacks:  map[string]*callbackRec{},
	}
	rec.Env = r.env(rec)
	ex := r.newExecution(rec)
	ex.wf = d.wf
	if err := ex.saveLocked(saveSet{start: true}); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.execs[rec.Name] = ex
	r.mu.Unlock()
	r.launch(ex)
	return ex, nil
}

func (r *Runner) launch(ex *execution) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(ex.done)
		ex.run()
	}()
}

// list returns the executions of a workflow, newest first.
func (r *Runner) list(workflow string) []*execution {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*execution
	prefix := r.WorkflowName(workflow) + "/executions/"
	for name, ex := range r.execs {
		if strings.HasPrefix(name, prefix) {
			out = append(out, ex)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		ti, tj := out[i].rec.StartTime, out[j].rec.StartTime
		if !ti.Equal(tj) {
			return ti.After(tj)
		}
		return out[i].rec.Name > out[j].rec.Name
	})
	return out
}

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Execution states as stored.
const (
	stateActive    = "ACTIVE"
	stateSucceeded = "SUCCEEDED"
	stateFailed    = "FAILED"
	stateCancelled = "CANCELLED"
)

// record is the durable state of one execution.
type record struct {
	Name       string                  `json:"name"`
	Workflow   string                  `json:"workflow"`
	RevisionID string                  `json:"revisionId"`
	Source     string                  `json:"source"`
	Argument   string                  `json:"argument"`
	State      string                  `json:"state"`
	Result     string                  `json:"result,omitempty"`
	Error      *errorRec               `json:"error,omitempty"`
	StartTime  time.Time               `json:"startTime"`
	EndTime    time.Time               `json:"endTime"`
	Journal    []entry                 `json:"journal"`
	Callbacks  map[string]*callbackRec `json:"callbacks"`
	// Env is what sys.get_env answers, fixed when the execution starts as
	// a revision fixes it on Google Cloud: reading it is then no effect to
	// journal. Nil in records written before it existed, whose get_env
	// calls are journaled entries to replay.
	Env map[string]string `json:"env,omitempty"`
}

type errorRec struct {
	Payload string `json:"payload"`
	Context string `json:"context"`
}

// entry is one journaled result, in execution order.
type entry struct {
	Kind     string       `json:"kind"`
	Value    *storedValue `json:"value,omitempty"`
	Err      *storedValue `json:"error,omitempty"`
	Deadline *time.Time   `json:"deadline,omitempty"`
}

// callbackRec is a callback endpoint of the execution and the payloads
// received that no await has consumed yet.
type callbackRec struct {
	Method  string        `json:"method"`
	Pending []storedValue `json:"pending,omitempty"`
}

// execution is one running or finished execution.
type execution struct {
	r    *Runner
	done chan struct{}

	ctx    context.Context
	cancel context.CancelCauseFunc
	signal chan struct{} // a callback payload arrived

	mu  sync.Mutex
	rec *record

	// Interpreter state, owned by the execution goroutine.
	wf        *Workflow
	replayPos int
	steps     int
	maxSteps  int
	depth     int
	frames    []*frame // the call stack, for the memory limit
	curStep   string
}

func (r *Runner) newExecution(rec *record) *execution {
	if rec.Callbacks == nil {
		rec.Callbacks = map[string]*callbackRec{}
	}
	ex := &execution{r: r, rec: rec, done: make(chan struct{}), signal: make(chan struct{}, 1), maxSteps: r.cfg.MaxSteps}
	ex.ctx, ex.cancel = context.WithCancelCause(r.ctx)
	return ex
}

// run interprets the workflow and records the outcome.
func (ex *execution) run() {
	var arg any
	if ex.rec.Argument != "" {
		v, err := decodeJSON([]byte(ex.rec.Argument))
		if err != nil {
			ex.finish(nil, err)
			return
		}
		arg = v
	}
	args := map[string]any{}
	if ps := ex.wf.main.params; len(ps) == 1 {
		args[ps[0].name] = arg
	}
	v, err := ex.callRoutine(ex.wf.main, args)
	ex.finish(v, err)
}

func (ex *execution) finish(v any, err error) {
	if errors.Is(context.Cause(ex.ctx), errShutdown) {
		return // the next runner resumes it
	}
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.rec.State != stateActive {
		return // cancelled meanwhile
	}
	if err == nil {
		b, encErr := encodeJSON(v)
		switch {
		case encErr != nil:
			err = encErr
		case len(b) > MaxResultBytes:
			err = newError("ResourceLimitError", fmt.Sprintf("result of %d bytes exceeds the %d-byte limit", len(b), MaxResultBytes))
		default:
			ex.rec.State = stateSucceeded
			ex.rec.Result = string(b)
		}
	}
	if err != nil {
		ex.rec.State = stateFailed
		ex.rec.Error = ex.errorRecord(err)
	}
	ex.rec.EndTime = ex.r.cfg.Clock.Now().UTC()
	if perr := ex.saveLocked(saveSet{end: true}); perr != nil {
		ex.r.cfg.Logger.Error("failed to persist finished execution", "execution", ex.rec.Name, "error", perr)
	}
	ex.r.cfg.Logger.Info("workflow execution finished", "execution", ex.rec.Name, "state", ex.rec.State)
}

func (ex *execution) errorRecord(err error) *errorRec {
	rz, ok := asRaised(err)
	switch {
	case errors.Is(err, errDurationExceeded):
		rz = newError("ResourceLimitError", err.Error())
	case !ok:
		rz = newError("InternalError", err.Error())
	}
	payload, encErr := encodeJSON(rz.value)
	if encErr != nil {
		payload, _ = json.Marshal(fmt.Sprint(rz.value))
	}
	ctxText := fmt.Sprintf("in step %q: %s", ex.curStep, rz.Error())
	if tags := joinTags(rz.value); tags != "" {
		ctxText = fmt.Sprintf("%s in step %q: %s", tags, ex.curStep, rz.Error())
	}
	return &errorRec{Payload: string(payload), Context: ctxText}
}

// cancelExecution marks the execution CANCELLED and stops it.
func (ex *execution) cancelExecution() error {
	ex.mu.Lock()
	if ex.rec.State != stateActive {
		ex.mu.Unlock()
		return fmt.Errorf("execution %s is %s, not ACTIVE", ex.rec.Name, ex.rec.State)
	}
	ex.rec.State = stateCancelled
	ex.rec.EndTime = ex.r.cfg.Clock.Now().UTC()
	ex.rec.Error = &errorRec{Payload: `"Execution cancelled"`, Context: "the execution was cancelled by CancelExecution"}
	err := ex.saveLocked(saveSet{end: true})
	ex.mu.Unlock()
	ex.cancel(errStopped)
	return err
}

func (ex *execution) proto(view executionspb.ExecutionView) *executionspb.Execution {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	rec := ex.rec
	e := &executionspb.Execution{
		Name:               rec.Name,
		StartTime:          timestamppb.New(rec.StartTime),
		State:              executionspb.Execution_State(executionspb.Execution_State_value[rec.State]),
		WorkflowRevisionId: rec.RevisionID,
	}
	if !rec.EndTime.IsZero() {
		e.EndTime = timestamppb.New(rec.EndTime)
		e.Duration = durationpb.New(rec.EndTime.Sub(rec.StartTime))
	}
	if view == executionspb.ExecutionView_BASIC {
		return e
	}
	e.Argument = rec.Argument
	if rec.State == stateSucceeded {
		e.Result = rec.Result
	}
	if rec.Error != nil && (rec.State == stateFailed || rec.State == stateCancelled) {
		e.Error = &executionspb.Execution_Error{Payload: rec.Error.Payload, Context: rec.Error.Context}
	}
	return e
}

// Journal access. effect runs do once and journals its outcome; on replay
// it returns the journaled outcome instead.
func (ex *execution) replay(kind string) (*entry, error) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.replayPos >= len(ex.rec.Journal) {
		return nil, nil
	}
	e := &ex.rec.Journal[ex.replayPos]
	if e.Kind != kind {
		return nil, fmt.Errorf("journal entry %d is %q but the workflow asked for %q: the execution cannot be replayed", ex.replayPos, e.Kind, kind)
	}
	ex.replayPos++
	return e, nil
}

// append journals e; mutate, if set, changes the record in the same
// journal record, and cb names the callback it changes ("" for none). Only
// e and that callback are written, whatever the length of the journal.
// The record is deferred (deferLocked): a journal entry is the result of
// work done inside the execution — a time read, a callback endpoint
// made, a payload consumed, an effect's answer — and losing the last few
// to a crash only makes the replay do them again, as a crash between an
// effect and its entry always did. What leaves the execution syncs first.
func (ex *execution) append(e entry, cb string, mutate func(*record)) error {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if mutate != nil {
		mutate(ex.rec)
	}
	ex.rec.Journal = append(ex.rec.Journal, e)
	ex.replayPos = len(ex.rec.Journal)
	s := saveSet{entries: []int{len(ex.rec.Journal) - 1}}
	if cb != "" {
		s.callbacks = []string{cb}
	}
	return ex.deferLocked(s)
}

// external are the effects seen outside the execution: before one runs,
// every journal record so far is synced, so that nothing it reveals — a
// callback URL, a time, an earlier answer — can be lost to a crash after
// someone outside has acted on it.
var external = map[string]bool{"connector": true, "http": true}

func (ex *execution) effect(kind string, do func() (any, error)) (any, error) {
	e, err := ex.replay(kind)
	if err != nil {
		return nil, err
	}
	if e != nil {
		return e.outcome()
	}
	if external[kind] {
		if err := ex.r.journal.Sync(); err != nil {
			return nil, fmt.Errorf("failed to persist execution %s: %w", ex.rec.Name, err)
		}
	}
	v, err := do()
	if ex.ctx.Err() != nil {
		return nil, errStopped
	}
	ne := entry{Kind: kind}
	if err != nil {
		rz, ok := asRaised(err)
		if !ok {
			return nil, err
		}
		ne.Err = &storedValue{rz.value}
	} else {
		ne.Value = &storedValue{v}
	}
	if perr := ex.append(ne, "", nil); perr != nil {
		return nil, perr
	}
	return v, err
}

func (e *entry) outcome() (any, error) {
	if e.Err != nil {
		return nil, &raised{value: wfexpr.Copy(e.Err.v)}
	}
	if e.Value == nil {
		return nil, nil
	}
	return wfexpr.Copy(e.Value.v), nil
}

// deadline journals (or replays) a wake-up time computed by next.
func (ex *execution) deadline(kind string, next func() time.Time) (time.Time, error) {
	e, err := ex.replay(kind)
	if err != nil {
		return time.Time{}, err
	}
	if e != nil && e.Deadline != nil {
		return *e.Deadline, nil
	}
	d := next().UTC()
	if err := ex.append(entry{Kind: kind, Deadline: &d}, "", nil); err != nil {
		return time.Time{}, err
	}
	return d, nil
}

// waitUntil sleeps until d or until the execution stops; a wait past the
// execution's one-year limit ends it at the limit.
func (ex *execution) waitUntil(d time.Time) error {
	var over error
	if lim := ex.limit(); d.After(lim) {
		d, over = lim, errDurationExceeded
	}
	wait := d.Sub(ex.r.cfg.Clock.Now())
	if wait <= 0 {
		return over
	}
	t := ex.r.cfg.Clock.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C():
		return over
	case <-ex.ctx.Done():
		return errStopped
	}
}

// fromSeconds converts a Workflows number of seconds into a duration.
func fromSeconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second))
}

// sleepFor sleeps seconds of the runner's clock, journaling the deadline.
func (ex *execution) sleepFor(kind string, s float64) error {
	d, err := ex.deadline(kind, func() time.Time { return ex.r.cfg.Clock.Now().Add(fromSeconds(s)) })
	if err != nil {
		return err
	}
	return ex.waitUntil(d)
}
