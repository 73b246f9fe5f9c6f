// Package lifecycle is what the four functions do, independent of how they
// are triggered: intake (request, withdraw, list), approval (record
// decisions, resume the workflow), grant (write the binding, schedule the
// revocation) and revoke (remove the binding, verify, end the grant). The
// function adapters in functions/ only translate HTTP and CloudEvents.
//
// Every decision re-reads the policy in force and the grant from the
// ledger; every handler is idempotent, because Pub/Sub, Eventarc and Cloud
// Tasks deliver at least once and out of order. A transition is written to
// the ledger with its event (the timeline is the outbox) and then
// published; an event whose publication failed is published again by
// whoever touches the grant next, or by Sweep.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/googleapis/gax-go/v2"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/groups"
	"github.com/jitpipeline/jit/internal/iamgrant"
	"github.com/jitpipeline/jit/internal/policy"
)

// PolicySource gives the policy in force (policy/source.Source satisfies it).
type PolicySource interface {
	Current(ctx context.Context) (*policy.Policy, string, error)
}

// Publisher puts events on the events topic (events.Publisher).
type Publisher interface {
	Publish(ctx context.Context, e cloudevents.Event) (string, error)
}

// IAM writes and verifies the bindings (iamgrant.Writer).
type IAM interface {
	Apply(ctx context.Context, changes ...iamgrant.Change) (iamgrant.Result, error)
	Verify(ctx context.Context, changes ...iamgrant.Change) ([]iamgrant.Check, error)
}

// Tasks is the slice of the Cloud Tasks client the grant and revoke
// functions use (*cloudtasks.Client satisfies it).
type Tasks interface {
	CreateTask(ctx context.Context, req *cloudtaskspb.CreateTaskRequest, opts ...gax.CallOption) (*cloudtaskspb.Task, error)
	DeleteTask(ctx context.Context, req *cloudtaskspb.DeleteTaskRequest, opts ...gax.CallOption) error
}

// Callbacks resume a workflow execution waiting on a callback URL.
type Callbacks interface {
	Call(ctx context.Context, url string, body any) error
}

// Config is everything the service needs; each function uses a part.
type Config struct {
	Ledger     grant.Ledger
	Policy     PolicySource
	Groups     groups.Resolver
	IsInternal func(email string) bool
	Events     Publisher
	IAM        IAM
	Tasks      Tasks
	Callbacks  Callbacks
	Clock      clock.Clock
	// RevokeQueue is the Cloud Tasks queue of revocation tasks
	// (projects/P/locations/L/queues/Q); RevokeURL the revoke function's
	// task endpoint; RevokeServiceAccount the identity the tasks call as.
	RevokeQueue          string
	RevokeURL            string
	RevokeServiceAccount string
	Logger               *slog.Logger
}

// Service implements the functions' behaviour.
type Service struct {
	cfg Config
	log *slog.Logger
	// keyLocks serialise convergence of one user's binding in this
	// process; across processes the re-check after each write converges.
	keyLocks sync.Map
}

// New builds a Service; functions that need only a part may leave the
// other dependencies nil.
func New(cfg Config) (*Service, error) {
	var errs []error
	if cfg.Ledger == nil {
		errs = append(errs, errors.New("Ledger is required"))
	}
	if cfg.Clock == nil {
		errs = append(errs, errors.New("Clock is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("invalid lifecycle config: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IsInternal == nil {
		cfg.IsInternal = func(string) bool { return false }
	}
	return &Service{cfg: cfg, log: cfg.Logger}, nil
}

// Error is a refusal meant for the caller: an HTTP status, a code in the
// style of google.rpc.Code, the offending field (if any) and a message.
type Error struct {
	Status  int
	Code    string
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return e.Code + ": " + e.Message
}

func invalid(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "INVALID_ARGUMENT", Field: field, Message: fmt.Sprintf(format, args...)}
}

func notFound(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: "NOT_FOUND", Field: field, Message: fmt.Sprintf(format, args...)}
}

func forbidden(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusForbidden, Code: "PERMISSION_DENIED", Field: field, Message: fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) *Error {
	return &Error{Status: http.StatusConflict, Code: "FAILED_PRECONDITION", Message: fmt.Sprintf(format, args...)}
}

// subject resolves who a caller is for the policy: their groups and
// whether their account is internal.
func (s *Service) subject(ctx context.Context, email string) (policy.Subject, error) {
	var gs []string
	if s.cfg.Groups != nil {
		var err error
		if gs, err = s.cfg.Groups.GroupsOf(ctx, email); err != nil {
			return policy.Subject{}, fmt.Errorf("failed to resolve the groups of %s: %w", email, err)
		}
	}
	return policy.NewSubject(email, gs, s.cfg.IsInternal(email)), nil
}

func (s *Service) policy(ctx context.Context) (*policy.Policy, error) {
	if s.cfg.Policy == nil {
		return nil, errors.New("no policy source configured")
	}
	pol, _, err := s.cfg.Policy.Current(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to load the policy: %w", err)
	}
	return pol, nil
}

// now is the service's time, to the microsecond: Firestore keeps no more,
// and Cloud Workflows' time.parse accepts no more (the lifecycle workflow
// parses the approval deadline).
func (s *Service) now() time.Time { return s.cfg.Clock.Now().UTC().Truncate(time.Microsecond) }

// flush publishes the grant's unpublished events, in order, and marks
// them published. A failure leaves the rest for the next touch or Sweep.
func (s *Service) flush(ctx context.Context, g *grant.Grant) error {
	if s.cfg.Events == nil {
		return nil
	}
	for _, entry := range g.Unpublished() {
		e, err := events.FromGrantEntry(g, entry)
		if err != nil {
			return fmt.Errorf("failed to build event %s: %w", entry.EventID, err)
		}
		if _, err := s.cfg.Events.Publish(ctx, e); err != nil {
			return fmt.Errorf("failed to publish event %s: %w", entry.EventID, err)
		}
		var d events.Data
		if err := e.DataAs(&d); err == nil {
			events.Audit(ctx, s.log, e, &d)
		}
		id := entry.EventID
		if _, err := s.cfg.Ledger.Update(ctx, g.ID, func(cur *grant.Grant) error {
			if !cur.MarkPublished(id) {
				return grant.ErrNoChange
			}
			return nil
		}); err != nil {
			return fmt.Errorf("failed to mark event %s published: %w", id, err)
		}
	}
	return nil
}

// publishAfter flushes and logs (does not fail the caller) a publication
// error: the transition is durable, and Sweep will publish it.
func (s *Service) publishAfter(ctx context.Context, g *grant.Grant) {
	if err := s.flush(ctx, g); err != nil {
		s.log.WarnContext(ctx, "event publication deferred to the sweep", "grant_id", g.ID, "error", err)
	}
}

// Sweep publishes every event left unpublished (after a crash between the
// ledger write and the publication). The revoke function runs it
// periodically; locally the embedded pipeline does.
func (s *Service) Sweep(ctx context.Context) error {
	gs, err := s.cfg.Ledger.List(ctx, grant.Query{Unpublished: true, Limit: 500})
	if err != nil {
		return fmt.Errorf("failed to list grants with unpublished events: %w", err)
	}
	var errs []error
	for _, g := range gs {
		if err := s.flush(ctx, g); err != nil {
			errs = append(errs, err)
		}
	}
	// A request no workflow execution has claimed a while after it was
	// made lost its grant.requested delivery (locally, Pub/Sub does not
	// survive a restart): publish it again, with the same event ID.
	waiting, err := s.cfg.Ledger.List(ctx, grant.Query{States: []grant.State{grant.ApprovalAwaited, grant.Activating}, Limit: 500})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("failed to list waiting grants: %w", err))...)
	}
	for _, g := range waiting {
		if g.Execution != "" || s.now().Sub(g.CreateTime) < RedriveAfter || len(g.Timeline) == 0 {
			continue
		}
		e, err := events.FromGrantEntry(g, g.Timeline[0])
		if err == nil {
			_, err = s.cfg.Events.Publish(ctx, e)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("failed to re-drive %s: %w", g.ID, err))
			continue
		}
		s.log.InfoContext(ctx, "re-drove a request no workflow claimed", "grant_id", g.ID)
	}
	return errors.Join(errs...)
}

// RedriveAfter is how long a request may wait for its workflow execution
// before Sweep publishes its grant.requested again.
const RedriveAfter = time.Minute

// callback resumes the workflow; a finished execution (404) or an
// already-delivered callback (429) is not an error: the handler is being
// redelivered.
func (s *Service) callback(ctx context.Context, url string, body any) error {
	if url == "" || s.cfg.Callbacks == nil {
		return nil
	}
	if err := s.cfg.Callbacks.Call(ctx, url, body); err != nil {
		return fmt.Errorf("failed to resume the workflow: %w", err)
	}
	return nil
}

func member(email string) string { return "user:" + strings.ToLower(email) }

// StateDuplicate answers a workflow execution that is not the one that
// owns the grant (Eventarc delivers at least once, so a grant.requested
// event may start two): it ends at once.
const StateDuplicate = "DUPLICATE"

// executionOf extracts the execution ID from a Workflows callback URL
// (…/executions/{execution}/callbacks/{callback}).
func executionOf(callbackURL string) string {
	_, rest, ok := strings.Cut(callbackURL, "/executions/")
	if !ok {
		return ""
	}
	exec, _, _ := strings.Cut(rest, "/")
	return exec
}

// claim records which execution owns the grant; false means another one
// does, and the caller answers its callback with StateDuplicate.
func claim(cur *grant.Grant, callbackURL string) bool {
	exec := executionOf(callbackURL)
	if exec == "" {
		return true // not from a workflow (tests, manual calls)
	}
	if cur.Execution == "" {
		cur.Execution = exec
	}
	return cur.Execution == exec
}
