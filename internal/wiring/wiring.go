// Package wiring is the one composition of the four functions: from the
// concrete clients and adapters of an environment it builds each
// function's lifecycle service and its entry points. internal/deploy
// gives it the Google client libraries (one function per process, built
// on the first invocation); internal/local/pipeline gives it the clients
// of the embedded cloud (all four in one process). So the graph the
// pipeline is tested with is the graph that is deployed.
//
// It is a package of its own, not a function of internal/deploy, because
// it must link neither side's construction: the embedded pipeline has no
// business linking Firestore and the deployed functions must not link
// internal/local (deps_test.go at the module root).
package wiring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	approvalfn "github.com/jitpipeline/jit/functions/approval"
	grantfn "github.com/jitpipeline/jit/functions/grant"
	intakefn "github.com/jitpipeline/jit/functions/intake"
	revokefn "github.com/jitpipeline/jit/functions/revoke"
	"github.com/jitpipeline/jit/internal/api"
	"github.com/jitpipeline/jit/internal/approvallink"
	"github.com/jitpipeline/jit/internal/auth"
	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/envelope"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/groups"
	"github.com/jitpipeline/jit/internal/lifecycle"
	"github.com/jitpipeline/jit/internal/mail"
	"github.com/jitpipeline/jit/internal/notify"
	"github.com/jitpipeline/jit/internal/pages"
	"github.com/jitpipeline/jit/internal/policy"
	"github.com/jitpipeline/jit/internal/policy/source"
)

// Deps are the clients, adapters and settings the functions are built
// from. Each function takes the part it needs, and its constructor names
// whatever of that part is missing; the identity-bound parts (Callbacks,
// IAM) are the function's own, so an environment that runs several
// functions in one process sets them per function.
type Deps struct {
	Ledger grant.Ledger
	Policy lifecycle.PolicySource
	// PolicyStatus, optional, tells the policy page of a refused version
	// of the policy document.
	PolicyStatus pages.PolicyStatus
	Groups       groups.Resolver
	// InternalDomains and Directory: lifecycle.Callers.
	InternalDomains []string
	Directory       func(ctx context.Context, email string) string
	// Events, Lifecycle and Revocations publish on the events, lifecycle
	// and revocations topics.
	Events      lifecycle.Publisher
	Lifecycle   lifecycle.Publisher
	Revocations lifecycle.Publisher
	// Workflow, ExecutionsURL, Executions and Callbacks reach the
	// lifecycle workflow (lifecycle.Resume).
	Workflow      string
	ExecutionsURL string
	Executions    lifecycle.Executions
	Callbacks     lifecycle.Callbacks
	// IAM and Tasks are for grant and revoke only (lifecycle.Privileged),
	// as are the revocation task settings.
	IAM                 lifecycle.IAM
	Tasks               lifecycle.Tasks
	RevokeQueue         string
	RevokeURL           string
	TasksServiceAccount string
	Clock               clock.Clock
	// Logger is the environment's; each function logs with its name.
	Logger *slog.Logger

	// The approval function's mail and pages (docs/email-approval.md):
	// Mail submits the notifications, Journal records which were sent
	// (the ledger implements it), MailFrom is their sender and MailDomain
	// the right side of their Message-IDs. LinkKeys sign and verify the
	// approval links; PagesURL is the origin the pages are served on
	// (scheme://host[:port]), which the links point to; CSRFKey keys the
	// pages' forms. SignInURL, optional, is where the pages send people
	// without an identity (locally the user picker).
	Mail       mail.Sender
	Journal    notify.Journal
	MailFrom   string
	MailDomain string
	LinkKeys   approvallink.Keys
	PagesURL   string
	CSRFKey    []byte
	SignInURL  string
}

// CloudEventFunc is a CloudEvent function's handler, as functions-framework
// registers it.
type CloudEventFunc = func(context.Context, cloudevents.Event) error

func (d Deps) logger(function string) *slog.Logger {
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return log.With("function", function)
}

func (d Deps) common(log *slog.Logger) lifecycle.Common {
	return lifecycle.Common{Ledger: d.Ledger, Policy: d.Policy, Events: d.Events, Lifecycle: d.Lifecycle, Clock: d.Clock, Logger: log}
}

func (d Deps) callers() lifecycle.Callers {
	return lifecycle.Callers{Groups: d.Groups, InternalDomains: d.InternalDomains, Directory: d.Directory}
}

func (d Deps) resume() lifecycle.Resume {
	return lifecycle.Resume{Workflow: d.Workflow, ExecutionsURL: d.ExecutionsURL, Callbacks: d.Callbacks}
}

func (d Deps) privileged() lifecycle.Privileged {
	return lifecycle.Privileged{IAM: d.IAM, Tasks: d.Tasks, RevokeQueue: d.RevokeQueue, RevokeURL: d.RevokeURL, RevokeServiceAccount: d.TasksServiceAccount}
}

// Intake is the intake function.
type Intake struct {
	Service *lifecycle.IntakeService
	log     *slog.Logger
	deps    Deps
}

// NewIntake builds the intake function.
func NewIntake(d Deps) (*Intake, error) {
	log := d.logger("intake")
	svc, err := lifecycle.NewIntake(lifecycle.IntakeConfig{Common: d.common(log), Callers: d.callers(), Resume: d.resume(), Revocations: d.Revocations})
	if err != nil {
		return nil, err
	}
	return &Intake{Service: svc, log: log, deps: d}, nil
}

// HTTP is the API people call, authenticated by people.
func (f *Intake) HTTP(people api.Authenticator) *api.Handler {
	return intakefn.HTTP(f.Service, people, f.log)
}

// Portal is the people's pages the intake function serves (requesters'
// and administrators'), for people authenticated by people; signIn is
// where to send someone without an identity ("" on Google Cloud, where
// IAP signs people in).
func (f *Intake) Portal(people pages.Authenticator, signIn string) (http.Handler, error) {
	return pages.NewPortal(pages.PortalConfig{
		Intake: f.Service, Auth: people, Clock: f.deps.Clock, Export: api.ServeExport,
		Logger: f.log.With("component", "pages"), SignInURL: signIn, ApprovalsURL: f.deps.PagesURL,
		Status: f.deps.PolicyStatus,
	})
}

// Requests handles the requests topic: envelopes signed with keys, naming
// audience, from the systems the policy in force trusts.
func (f *Intake) Requests(keys envelope.KeySource, audience string) (CloudEventFunc, error) {
	v, err := envelope.New(envelope.Config{
		Keys:     keys,
		Audience: audience,
		Trusted: func(email string) bool {
			// The policy source outlives any one message.
			pol, _, err := f.deps.Policy.Current(context.Background())
			return err == nil && pol.TrustsRequester(email)
		},
		Now:    f.deps.Clock.Now,
		Logger: f.log.With("component", "envelope"),
	})
	if err != nil {
		return nil, err
	}
	return intakefn.Requests(f.Service, v, f.log), nil
}

// Approval is the approval function.
type Approval struct {
	Service  *lifecycle.ApprovalService
	Notifier *notify.Notifier
	log      *slog.Logger
	deps     Deps
	links    *approvallink.Verifier
}

// linkIssuer is the iss of approval links: only the approval function
// mints and verifies them.
const linkIssuer = "jit-approval"

// NewApproval builds the approval function: the decisions, the
// notifications and the approval page, each dependency required.
func NewApproval(d Deps) (*Approval, error) {
	log := d.logger("approval")
	svc, err := lifecycle.NewApproval(lifecycle.ApprovalConfig{Common: d.common(log), Callers: d.callers(), Resume: d.resume(), Executions: d.Executions})
	if err != nil {
		return nil, err
	}
	var errs []error
	if d.LinkKeys == nil {
		errs = append(errs, errors.New("LinkKeys is required"))
	}
	if d.PagesURL == "" {
		errs = append(errs, errors.New("PagesURL is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("approval function: %w", err)
	}
	minter := &approvallink.Minter{Keys: d.LinkKeys, Audience: d.PagesURL, Issuer: linkIssuer, Clock: d.Clock}
	verifier, err := approvallink.NewVerifier(d.LinkKeys, linkIssuer, d.PagesURL, d.Clock)
	if err != nil {
		return nil, fmt.Errorf("approval function: %w", err)
	}
	n, err := notify.New(notify.Config{
		Sender: d.Mail, Journal: d.Journal,
		Links:     mintedLinks{minter: minter, base: d.PagesURL},
		Approvers: svc.Approvers,
		From:      d.MailFrom, Domain: d.MailDomain, PageURL: d.PagesURL,
		Logger: log.With("component", "notify"), Clock: d.Clock,
	})
	if err != nil {
		return nil, fmt.Errorf("approval function: %w", err)
	}
	return &Approval{Service: svc, Notifier: n, log: log, deps: d, links: verifier}, nil
}

// Notify handles the transitions on the events topic: the mails.
func (f *Approval) Notify() CloudEventFunc {
	return approvalfn.Notify(f.Notifier, f.deps.Ledger, f.log)
}

// Pages serves the approval page, for people authenticated by people.
func (f *Approval) Pages(people pages.Authenticator) (http.Handler, error) {
	return approvalfn.Pages(pages.Config{
		Grants: f.Service, Links: pageLinks{f.links}, Auth: people,
		CSRFKey: f.deps.CSRFKey, Origin: f.deps.PagesURL, Clock: f.deps.Clock,
		Logger: f.log.With("component", "pages"), SignInURL: f.deps.SignInURL,
	})
}

// mintedLinks gives the notifier approval links: a token bound to the
// grant and the approver, in the URL of the approval page.
type mintedLinks struct {
	minter *approvallink.Minter
	base   string
}

func (l mintedLinks) Link(ctx context.Context, grantID, approver string, deadline time.Time) (string, error) {
	tok, err := l.minter.Mint(ctx, grantID, approver, deadline)
	if err != nil {
		return "", err
	}
	return approvallink.URL(l.base, grantID, tok), nil
}

// pageLinks gives the page approvallink's verdict in its own terms.
type pageLinks struct{ v *approvallink.Verifier }

func (l pageLinks) Verify(ctx context.Context, raw, grantID string) (pages.LinkClaims, error) {
	c, err := l.v.Verify(ctx, raw, grantID)
	var expired *approvallink.ExpiredError
	switch {
	case err == nil:
		return pages.LinkClaims{Grant: c.Grant, Approver: c.Approver, Expires: c.Expires}, nil
	case errors.As(err, &expired):
		return pages.LinkClaims{Expires: expired.At}, fmt.Errorf("%w: %w", pages.ErrLinkExpired, err)
	case errors.Is(err, approvallink.ErrOtherGrant):
		return pages.LinkClaims{}, fmt.Errorf("%w: %w", pages.ErrLinkOtherGrant, err)
	case errors.Is(err, approvallink.ErrInvalid):
		return pages.LinkClaims{}, fmt.Errorf("%w: %w", pages.ErrLinkInvalid, err)
	}
	return pages.LinkClaims{}, err // the keys are unreachable: try again later
}

// HTTP serves the decisions of approvers, authenticated by people.
func (f *Approval) HTTP(people api.Authenticator) *api.Handler {
	return approvalfn.HTTP(f.Service, people, f.log)
}

// Events handles approval.requested.
func (f *Approval) Events() CloudEventFunc { return approvalfn.Events(f.Service, f.log) }

// Grant is the grant function.
type Grant struct {
	Service *lifecycle.GrantService
	log     *slog.Logger
}

// NewGrant builds the grant function.
func NewGrant(d Deps) (*Grant, error) {
	log := d.logger("grant")
	svc, err := lifecycle.NewGrant(lifecycle.GrantConfig{Common: d.common(log), Callers: d.callers(), Resume: d.resume(), Executions: d.Executions, Privileged: d.privileged()})
	if err != nil {
		return nil, err
	}
	return &Grant{Service: svc, log: log}, nil
}

// Events handles activation.requested.
func (f *Grant) Events() CloudEventFunc { return grantfn.Events(f.Service, f.log) }

// Revoke is the revoke function, with the sweep.
type Revoke struct {
	Service *lifecycle.RevokeService
	log     *slog.Logger
	sweep   *slog.Logger
}

// NewRevoke builds the revoke function.
func NewRevoke(d Deps) (*Revoke, error) {
	log := d.logger("revoke")
	svc, err := lifecycle.NewRevoke(lifecycle.RevokeConfig{Common: d.common(log), Privileged: d.privileged()})
	if err != nil {
		return nil, err
	}
	return &Revoke{Service: svc, log: log, sweep: d.logger("sweep")}, nil
}

// Events handles revoke.requested.
func (f *Revoke) Events() CloudEventFunc { return revokefn.Events(f.Service, f.log) }

// Tasks handles the revocation tasks Cloud Tasks delivers, checked by check.
func (f *Revoke) Tasks(check auth.Service) http.Handler {
	return revokefn.Tasks(f.Service, check, f.log)
}

// Sweep is the sweep's entry point for Cloud Scheduler, checked by check.
func (f *Revoke) Sweep(check auth.Service) http.Handler {
	return revokefn.Sweep(f.Service, check, f.sweep)
}

// SourceStatus adapts a policy document source's status for the policy
// page: the newer version it refused, if any.
func SourceStatus(src *source.Source[*policy.Policy]) pages.PolicyStatus {
	return func() (string, time.Time, error) {
		st := src.Status()
		if st.Rejected == nil {
			return "", time.Time{}, nil
		}
		return st.Rejected.Version, st.Rejected.Time, st.Rejected.Err
	}
}
