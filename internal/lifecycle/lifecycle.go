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
	"slices"
	"sync"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/googleapis/gax-go/v2"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/emailaddr"
	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/groups"
	"github.com/jitpipeline/jit/internal/iambinding"
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

// IAM writes, verifies and purges the bindings (iambinding.Writer).
type IAM interface {
	Apply(ctx context.Context, changes ...iambinding.Change) (iambinding.Result, error)
	Verify(ctx context.Context, changes ...iambinding.Change) ([]iambinding.Check, error)
	Purge(ctx context.Context, resources ...string) (iambinding.Result, error)
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
	Ledger grant.Ledger
	Policy PolicySource
	Groups groups.Resolver
	// InternalDomains are the organization's own domains: an account whose
	// verified hosted domain is one of them is internal. Directory, if
	// set, gives the hosted domain of an account the entry point did not
	// vouch for (locally the world file; on Google Cloud nothing, so such
	// accounts are external).
	InternalDomains []string
	Directory       func(ctx context.Context, email string) string
	// Events carries the grant's transitions (the audit trail, for other
	// systems); Lifecycle carries grant.requested once more, to start the
	// workflow; Revocations carries revoke.requested commands. Eventarc
	// cannot filter Pub/Sub messages by attribute, so each trigger has a
	// topic of its own and every message starts only what it is for.
	Events      Publisher
	Lifecycle   Publisher
	Revocations Publisher
	IAM         IAM
	Tasks       Tasks
	Callbacks   Callbacks
	Clock       clock.Clock
	// RevokeQueue is the Cloud Tasks queue of revocation tasks
	// (projects/P/locations/L/queues/Q); RevokeURL the revoke function's
	// task endpoint; RevokeServiceAccount the identity the tasks call as.
	RevokeQueue          string
	RevokeURL            string
	RevokeServiceAccount string
	// Workflow is the lifecycle workflow
	// (projects/P/locations/L/workflows/W) and ExecutionsURL the scheme
	// and host of its callback URLs (ExecutionsEndpoint on Google Cloud,
	// the local runner's URL locally): commands are only ever answered on
	// callbacks of the execution that runs the grant, which Executions
	// confirms.
	Workflow      string
	ExecutionsURL string
	Executions    Executions
	Logger        *slog.Logger
}

// Service implements the functions' behaviour.
type Service struct {
	cfg Config
	log *slog.Logger
	// keyLocks serialise convergence of one user's binding in this
	// process; across processes the re-check after each write converges.
	keyLocks sync.Map
	// verified caches executions the Executions API confirmed, by name
	// (value: the grant ID).
	verified sync.Map
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

// Caller is who makes a request, as the entry point verified them.
type Caller struct {
	// Email is the verified address, in canonical form.
	Email string
	// HostedDomain is the Google Workspace or Cloud Identity domain of the
	// account as verified (IAP's hd claim); "" for consumer accounts or
	// when the entry point cannot tell, in which case the directory is
	// asked (Config.Directory).
	HostedDomain string
}

// subject resolves who someone is for the policy: their groups and
// whether their account is internal — decided from the verified hosted
// domain (or the directory), never from the address alone.
func (s *Service) subject(ctx context.Context, c Caller) (policy.Subject, error) {
	// The entry points refuse look-alike addresses; this is the last line,
	// for any entry point that forgets.
	if _, err := emailaddr.Canonical(c.Email); err != nil {
		return policy.Subject{}, &Error{Status: http.StatusUnauthorized, Code: "UNAUTHENTICATED", Message: fmt.Sprintf("the caller's address is refused: %v", err)}
	}
	var gs []string
	if s.cfg.Groups != nil {
		var err error
		if gs, err = s.cfg.Groups.GroupsOf(ctx, c.Email); err != nil {
			return policy.Subject{}, fmt.Errorf("failed to resolve the groups of %s: %w", c.Email, err)
		}
	}
	return policy.NewSubject(c.Email, gs, s.internal(ctx, c)), nil
}

// internal reports whether the account belongs to one of the
// organization's domains (class:internalUsers).
func (s *Service) internal(ctx context.Context, c Caller) bool {
	hd := s.hostedDomain(ctx, c)
	return hd != "" && slices.Contains(s.cfg.InternalDomains, hd)
}

// hostedDomain is the caller's verified hosted domain, or the directory's
// answer when the entry point could not tell.
func (s *Service) hostedDomain(ctx context.Context, c Caller) string {
	hd := c.HostedDomain
	if hd == "" && s.cfg.Directory != nil {
		hd = s.cfg.Directory(ctx, c.Email)
	}
	// A domain, lower-cased by ASCII rules only, like addresses.
	return emailaddr.Key(hd)
}

// requesterSubject is the requester of a grant, with the hosted domain
// verified when they asked.
func (s *Service) requesterSubject(ctx context.Context, g *grant.Grant) (policy.Subject, error) {
	return s.subject(ctx, Caller{Email: g.Requester, HostedDomain: g.RequesterHostedDomain})
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
// them published. A grant.requested goes to the lifecycle topic too, where
// it starts the workflow. The audit line of an entry is written by whoever
// marks it published, so it is written once however many instances race
// to publish it (events are at least once; the trail is not). A failure
// leaves the rest for the next touch or Sweep.
func (s *Service) flush(ctx context.Context, g *grant.Grant) error {
	if s.cfg.Events == nil {
		return errors.New("no events publisher configured")
	}
	for _, entry := range g.Unpublished() {
		e, err := events.FromGrantEntry(g, entry)
		if err != nil {
			return fmt.Errorf("failed to build event %s: %w", entry.EventID, err)
		}
		if _, err := s.cfg.Events.Publish(ctx, e); err != nil {
			return fmt.Errorf("failed to publish event %s: %w", entry.EventID, err)
		}
		if e.Type() == events.TypeRequested {
			if err := s.startLifecycle(ctx, e); err != nil {
				return err
			}
		}
		id, marked := entry.EventID, false
		if _, err := s.cfg.Ledger.Update(ctx, g.ID, func(cur *grant.Grant) error {
			if marked = cur.MarkPublished(id); !marked {
				return grant.ErrNoChange
			}
			return nil
		}); err != nil {
			return fmt.Errorf("failed to mark event %s published: %w", id, err)
		}
		if marked {
			var d events.Data
			if err := e.DataAs(&d); err == nil {
				events.Audit(ctx, s.log, e, &d)
			}
		}
	}
	return nil
}

// startLifecycle publishes grant.requested on the lifecycle topic, whose
// Eventarc trigger starts the workflow execution of the grant.
func (s *Service) startLifecycle(ctx context.Context, e cloudevents.Event) error {
	if s.cfg.Lifecycle == nil {
		return errors.New("no lifecycle publisher configured")
	}
	if _, err := s.cfg.Lifecycle.Publish(ctx, e); err != nil {
		return fmt.Errorf("failed to start the lifecycle of %s: %w", e.Subject(), err)
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

func member(email string) string { return "user:" + emailaddr.Key(email) }

// StateDuplicate answers a workflow execution that is not the one that
// owns the grant (Eventarc delivers at least once, so a grant.requested
// event may start two): it ends at once.
const StateDuplicate = "DUPLICATE"
