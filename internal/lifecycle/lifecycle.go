// Package lifecycle is what the four functions do, independent of how they
// are triggered: intake (request, withdraw, list), approval (record
// decisions, resume the workflow), grant (write the binding, schedule the
// revocation) and revoke (remove the binding, verify, end the grant). The
// function adapters in functions/ only translate HTTP and CloudEvents.
//
// Each function has a service of its own, built from a config whose every
// dependency is required (NewIntake, NewApproval, NewGrant, NewRevoke): a
// function that starts at all has everything it relies on, so nothing — a
// revocation backstop, a callback — is silently skipped. Only GrantConfig
// and RevokeConfig carry an IAM writer and a Cloud Tasks client: that only
// the grant and revoke functions change IAM holds by type. The services
// share unexported helpers (the policy re-check, the outbox, callback and
// execution verification) through an embedded core.
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

// FreshSource is a PolicySource some of whose entitlements come from
// state read elsewhere and cached — JIT Access's eligible bindings in IAM
// (policy/classic.Source). Fresh re-reads what decides on one
// entitlement: every request, approval and activation uses it, so a
// binding removed a moment ago counts at once.
type FreshSource interface {
	Fresh(ctx context.Context, entitlement string) (*policy.Policy, string, error)
}

// Publisher puts events on a topic (events.Publisher).
type Publisher interface {
	Publish(ctx context.Context, e cloudevents.Event) (string, error)
}

// IAM writes, verifies and purges the bindings (iambinding.Writer). Only
// the grant and revoke services hold one.
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

// Common is what every service needs.
type Common struct {
	Ledger grant.Ledger
	Policy PolicySource
	// Events carries the grant's transitions (the audit trail, for other
	// systems); Lifecycle carries grant.requested once more, to start the
	// workflow. Eventarc cannot filter Pub/Sub messages by attribute, so
	// each trigger has a topic of its own and every message starts only
	// what it is for. Any service may flush a grant's outbox, so every one
	// publishes on both.
	Events    Publisher
	Lifecycle Publisher
	Clock     clock.Clock
	// Logger is optional (nothing is logged without it).
	Logger *slog.Logger
}

func (c Common) problems() []error {
	return required(
		need{"Ledger", c.Ledger != nil}, need{"Policy", c.Policy != nil}, need{"Events", c.Events != nil},
		need{"Lifecycle", c.Lifecycle != nil}, need{"Clock", c.Clock != nil})
}

// Callers is how the services that judge people resolve them for the
// policy.
type Callers struct {
	Groups groups.Resolver
	// InternalDomains are the organization's own domains: an account whose
	// verified hosted domain is one of them is internal. Directory, if
	// set, gives the hosted domain of an account the entry point did not
	// vouch for (locally the world file; on Google Cloud nothing, so such
	// accounts are external). Both are optional.
	InternalDomains []string
	Directory       func(ctx context.Context, email string) string
}

func (c Callers) problems() []error {
	return required(need{"Groups", c.Groups != nil})
}

// Resume is how a service resumes the lifecycle workflow's executions.
type Resume struct {
	// Workflow is the lifecycle workflow
	// (projects/P/locations/L/workflows/W) and ExecutionsURL the scheme
	// and host of its callback URLs (ExecutionsEndpoint on Google Cloud,
	// the local runner's URL locally): only callbacks of that shape are
	// ever called.
	Workflow      string
	ExecutionsURL string
	Callbacks     Callbacks
}

func (c Resume) problems() []error {
	return required(need{"Workflow", c.Workflow != ""}, need{"ExecutionsURL", c.ExecutionsURL != ""}, need{"Callbacks", c.Callbacks != nil})
}

// Privileged is what only the grant and revoke services hold: the IAM
// writer and the revocation tasks.
type Privileged struct {
	IAM   IAM
	Tasks Tasks
	// RevokeQueue is the Cloud Tasks queue of revocation tasks
	// (projects/P/locations/L/queues/Q); RevokeURL the revoke function's
	// task endpoint; RevokeServiceAccount the identity the tasks call as.
	RevokeQueue          string
	RevokeURL            string
	RevokeServiceAccount string
}

func (c Privileged) problems() []error {
	return required(
		need{"IAM", c.IAM != nil}, need{"Tasks", c.Tasks != nil}, need{"RevokeQueue", c.RevokeQueue != ""},
		need{"RevokeURL", c.RevokeURL != ""}, need{"RevokeServiceAccount", c.RevokeServiceAccount != ""})
}

// need is a dependency and whether it is there.
type need struct {
	name string
	ok   bool
}

// required names each missing dependency.
func required(needs ...need) []error {
	var errs []error
	for _, n := range needs {
		if !n.ok {
			errs = append(errs, fmt.Errorf("%s is required", n.name))
		}
	}
	return errs
}

// core is what the services share: the ledger, the policy, the outbox and
// the workflow's callbacks. What a service does not need stays zero (the
// revoke service never calls back, intake never asks Executions); its
// constructor has checked what it does need.
type core struct {
	ledger          grant.Ledger
	policies        PolicySource
	events          Publisher
	lifecycle       Publisher
	clock           clock.Clock
	log             *slog.Logger
	groups          groups.Resolver
	internalDomains []string
	directory       func(ctx context.Context, email string) string
	workflow        string
	executionsURL   string
	callbacks       Callbacks
	executions      Executions
	// verified caches executions the Executions API confirmed, by name
	// (value: the grant ID).
	verified sync.Map
}

func newCore(c Common, p Callers, r Resume, x Executions) *core {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &core{
		ledger: c.Ledger, policies: c.Policy, events: c.Events, lifecycle: c.Lifecycle, clock: c.Clock, log: log,
		groups: p.Groups, internalDomains: p.InternalDomains, directory: p.Directory,
		workflow: r.Workflow, executionsURL: r.ExecutionsURL, callbacks: r.Callbacks, executions: x,
	}
}

// privileged is the core of the grant and revoke services: it writes and
// removes bindings and schedules and deletes revocation tasks.
type privileged struct {
	*core
	iam   IAM
	tasks Tasks
	queue string
	url   string
	sa    string
	// keyLocks serialise convergence of one user's binding in this
	// process; across processes the re-check after each write converges.
	keyLocks sync.Map
}

func newPrivileged(c *core, p Privileged) *privileged {
	return &privileged{core: c, iam: p.IAM, tasks: p.Tasks, queue: p.RevokeQueue, url: p.RevokeURL, sa: p.RevokeServiceAccount}
}

// The kinds of refusal a service answers: an Error wraps one of them, and
// the entry points (internal/api, the function adapters) decide what each
// means on their protocol.
var (
	ErrInvalid         = errors.New("invalid argument")
	ErrNotFound        = errors.New("not found")
	ErrForbidden       = errors.New("permission denied")
	ErrConflict        = errors.New("failed precondition")
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrTooEarly is a step asked for before its time (TooEarlyError).
	ErrTooEarly = errors.New("too early")
)

// Error is a refusal meant for the caller: its kind, the offending field
// (if any) and a message.
type Error struct {
	Kind    error
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code(), e.Field, e.Message)
	}
	return e.Code() + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Kind }

// kindCodes names each kind in the style of google.rpc.Code.
var kindCodes = map[error]string{
	ErrInvalid:         "INVALID_ARGUMENT",
	ErrNotFound:        "NOT_FOUND",
	ErrForbidden:       "PERMISSION_DENIED",
	ErrConflict:        "FAILED_PRECONDITION",
	ErrUnauthenticated: "UNAUTHENTICATED",
}

// Code is the kind's name in the style of google.rpc.Code.
func (e *Error) Code() string {
	if c, ok := kindCodes[e.Kind]; ok {
		return c
	}
	return "UNKNOWN"
}

func refusal(kind error, field, format string, args ...any) *Error {
	return &Error{Kind: kind, Field: field, Message: fmt.Sprintf(format, args...)}
}

func invalid(field, format string, args ...any) *Error {
	return refusal(ErrInvalid, field, format, args...)
}

func notFound(field, format string, args ...any) *Error {
	return refusal(ErrNotFound, field, format, args...)
}

func forbidden(field, format string, args ...any) *Error {
	return refusal(ErrForbidden, field, format, args...)
}

func conflict(format string, args ...any) *Error {
	return refusal(ErrConflict, "", format, args...)
}

// TooEarlyError is returned for a revocation task delivered before the end
// of its grant that has no further link to schedule: it must be delivered
// again (RetryAfter from now). It is an ErrTooEarly.
type TooEarlyError struct{ RetryAfter time.Duration }

func (e *TooEarlyError) Error() string {
	return fmt.Sprintf("the grant does not end yet; retry in %s", e.RetryAfter.Round(time.Second))
}

func (e *TooEarlyError) Is(target error) bool { return target == ErrTooEarly }

// Caller is who makes a request, as the entry point verified them.
type Caller struct {
	// Email is the verified address, in canonical form.
	Email string
	// HostedDomain is the Google Workspace or Cloud Identity domain of the
	// account as verified (IAP's hd claim); "" for consumer accounts or
	// when the entry point cannot tell, in which case the directory is
	// asked (Callers.Directory).
	HostedDomain string
}

// subject resolves who someone is for the policy: their groups and
// whether their account is internal — decided from the verified hosted
// domain (or the directory), never from the address alone.
func (s *core) subject(ctx context.Context, c Caller) (policy.Subject, error) {
	// The entry points refuse look-alike addresses; this is the last line,
	// for any entry point that forgets.
	if _, err := emailaddr.Canonical(c.Email); err != nil {
		return policy.Subject{}, refusal(ErrUnauthenticated, "", "the caller's address is refused: %v", err)
	}
	gs, err := s.groups.GroupsOf(ctx, c.Email)
	if err != nil {
		return policy.Subject{}, fmt.Errorf("failed to resolve the groups of %s: %w", c.Email, err)
	}
	return policy.NewSubject(c.Email, gs, s.internal(ctx, c)), nil
}

// internal reports whether the account belongs to one of the
// organization's domains (class:internalUsers).
func (s *core) internal(ctx context.Context, c Caller) bool {
	hd := s.hostedDomain(ctx, c)
	return hd != "" && slices.Contains(s.internalDomains, hd)
}

// hostedDomain is the caller's verified hosted domain, or the directory's
// answer when the entry point could not tell.
func (s *core) hostedDomain(ctx context.Context, c Caller) string {
	hd := c.HostedDomain
	if hd == "" && s.directory != nil {
		hd = s.directory(ctx, c.Email)
	}
	// A domain, lower-cased by ASCII rules only, like addresses.
	return emailaddr.Key(hd)
}

// requesterSubject is the requester of a grant, with the hosted domain
// verified when they asked.
func (s *core) requesterSubject(ctx context.Context, g *grant.Grant) (policy.Subject, error) {
	return s.subject(ctx, Caller{Email: g.Requester, HostedDomain: g.RequesterHostedDomain})
}

// people are the users among principals, groups expanded to their
// members, each once by key and in the order found, someone (the
// requester) left out. A group the directory no longer has counts for
// nobody.
func (s *core) people(ctx context.Context, principals []policy.Principal, except string) ([]string, error) {
	var out []string
	seen := map[string]bool{emailaddr.Key(except): true}
	add := func(email string) {
		if key := emailaddr.Key(email); !seen[key] {
			seen[key] = true
			out = append(out, key)
		}
	}
	for _, p := range principals {
		switch p.Type {
		case policy.UserPrincipal:
			add(p.Value)
		case policy.GroupPrincipal:
			members, err := s.groups.MembersOf(ctx, p.Value)
			if errors.Is(err, groups.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("failed to expand group %s: %w", p.Value, err)
			}
			for _, m := range members {
				add(m)
			}
		}
	}
	return out, nil
}

// decisionPolicy is the policy a decision on entitlement is taken on: the
// policy in force, read fresh where the source can (FreshSource).
func (s *core) decisionPolicy(ctx context.Context, entitlement string) (*policy.Policy, error) {
	fresh, ok := s.policies.(FreshSource)
	if !ok {
		return s.policy(ctx)
	}
	pol, _, err := fresh.Fresh(ctx, entitlement)
	if err != nil {
		return nil, fmt.Errorf("failed to load the policy: %w", err)
	}
	return pol, nil
}

func (s *core) policy(ctx context.Context) (*policy.Policy, error) {
	pol, _, err := s.policies.Current(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to load the policy: %w", err)
	}
	return pol, nil
}

// now is the service's time, to the microsecond: Firestore keeps no more,
// and Cloud Workflows' time.parse accepts no more (the lifecycle workflow
// parses the approval deadline).
func (s *core) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

// flush publishes the grant's unpublished events, in order, and marks
// them published. A grant.requested goes to the lifecycle topic too, where
// it starts the workflow. The audit line of an entry is written by whoever
// marks it published, so it is written once however many instances race
// to publish it (events are at least once; the trail is not). A failure
// leaves the rest for the next touch or Sweep.
func (s *core) flush(ctx context.Context, g *grant.Grant) error {
	for _, entry := range g.Unpublished() {
		e, err := events.FromGrantEntry(g, entry)
		if err != nil {
			return fmt.Errorf("failed to build event %s: %w", entry.EventID, err)
		}
		if err := s.publish(ctx, e); err != nil {
			return err
		}
		id, marked := entry.EventID, false
		if _, err := s.ledger.Update(ctx, g.ID, func(cur *grant.Grant) error {
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

// publish puts e on the events topic and, for grant.requested, on the
// lifecycle topic too — at the same time: the second publish need not
// wait for the first's answer (each is at least once on its own, and the
// ledger marks e published only once both have succeeded).
func (s *core) publish(ctx context.Context, e cloudevents.Event) error {
	if e.Type() != events.TypeRequested {
		if _, err := s.events.Publish(ctx, e); err != nil {
			return fmt.Errorf("failed to publish event %s: %w", e.ID(), err)
		}
		return nil
	}
	lifecycle := make(chan error, 1)
	go func() { lifecycle <- s.startLifecycle(ctx, e) }()
	_, err := s.events.Publish(ctx, e)
	if err != nil {
		err = fmt.Errorf("failed to publish event %s: %w", e.ID(), err)
	}
	return errors.Join(err, <-lifecycle)
}

// startLifecycle publishes grant.requested on the lifecycle topic, whose
// Eventarc trigger starts the workflow execution of the grant.
func (s *core) startLifecycle(ctx context.Context, e cloudevents.Event) error {
	if _, err := s.lifecycle.Publish(ctx, e); err != nil {
		return fmt.Errorf("failed to start the lifecycle of %s: %w", e.Subject(), err)
	}
	return nil
}

// publishAfter flushes and logs (does not fail the caller) a publication
// error: the transition is durable, and Sweep will publish it.
func (s *core) publishAfter(ctx context.Context, g *grant.Grant) {
	if err := s.flush(ctx, g); err != nil {
		s.log.WarnContext(ctx, "event publication deferred to the sweep", "grant_id", g.ID, "error", err)
	}
}

func member(email string) string { return "user:" + emailaddr.Key(email) }

// StateDuplicate answers a workflow execution that is not the one that
// owns the grant (Eventarc delivers at least once, so a grant.requested
// event may start two): it ends at once.
const StateDuplicate = "DUPLICATE"
