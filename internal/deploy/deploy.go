// Package deploy builds the functions as they run on Google Cloud: their
// configuration comes from environment variables (set by Terraform), their
// clients are the real Google client libraries with the function's own
// service account, and everything is built lazily, once per instance, on
// the first invocation — never in init(), because every function's code is
// linked into every deployed function (docs/google-cloud.md §6) — but from a
// background context, not the first request's: the clients live as long
// as the instance. What the clients are composed into is package wiring's,
// the same composition the embedded pipeline runs.
//
// What each function gets is only what it needs: intake and approval read
// the ledger and policy and publish events; approval also sends mail over
// SMTP and reads its link keys and SMTP password from Secret Manager
// (approval.go); grant and revoke also write IAM policies and Cloud Tasks.
//
// People reach intake and approval (its API and its pages) through
// Identity-Aware Proxy: every request's x-goog-iap-jwt-assertion is
// verified against IAP's keys and the configured audience
// (JIT_IAP_AUDIENCES); without an audience the function refuses to start. Cloud Tasks' tokens are verified against Google's keys,
// and the allow-list of service accounts is checked here.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode"

	cloudtasks "cloud.google.com/go/cloudtasks/apiv2"
	pubsub "cloud.google.com/go/pubsub/v2"
	resourcemanager "cloud.google.com/go/resourcemanager/apiv3"
	executions "cloud.google.com/go/workflows/executions/apiv1"
	"google.golang.org/api/option"
	htransport "google.golang.org/api/transport/http"

	"github.com/jitpipeline/jit/internal/auth"
	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/emailaddr"
	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/groups"
	"github.com/jitpipeline/jit/internal/iambinding"
	"github.com/jitpipeline/jit/internal/ledger/firestore"
	"github.com/jitpipeline/jit/internal/lifecycle"
	"github.com/jitpipeline/jit/internal/logging"
	"github.com/jitpipeline/jit/internal/mail"
	"github.com/jitpipeline/jit/internal/policy"
	"github.com/jitpipeline/jit/internal/policy/classic"
	"github.com/jitpipeline/jit/internal/policy/source"
	"github.com/jitpipeline/jit/internal/wiring"
)

// Config is read from the environment.
type Config struct {
	Project         string   // JIT_PROJECT: project of the pipeline's own resources
	EventsTopic     string   // JIT_EVENTS_TOPIC: the transitions, the audit trail (default jit-events)
	LifecycleTopic  string   // JIT_LIFECYCLE_TOPIC: grant.requested, the workflow's trigger (default jit-lifecycle)
	RevokeTopic     string   // JIT_REVOKE_TOPIC: revoke.requested commands (default jit-revocations)
	Workflow        string   // JIT_WORKFLOW: projects/P/locations/L/workflows/grant-lifecycle
	SweepURL        string   // JIT_SWEEP_URL: the sweep function's URL (the audience of Cloud Scheduler's token)
	SchedulerSA     string   // JIT_SCHEDULER_SERVICE_ACCOUNT: the identity Cloud Scheduler calls the sweep as
	RevokeQueue     string   // JIT_REVOKE_QUEUE: projects/P/locations/L/queues/Q
	RevokeURL       string   // JIT_REVOKE_URL: the revokeTask function's URL
	TasksSA         string   // JIT_TASKS_SERVICE_ACCOUNT: identity of revocation tasks
	Policy          string   // JIT_POLICY: secretmanager:…, gs://… or a file
	InternalDomains []string // JIT_INTERNAL_DOMAINS: comma-separated
	IAPAudiences    []string // JIT_IAP_AUDIENCES: comma-separated, for intake and approval
	IAPKeysURL      string   // JIT_IAP_KEYS_URL (default IAP's public JWK set)
	RequestsAud     string   // JIT_REQUESTS_AUDIENCE: the audience signed requests name (default jit-requests)
	LogLevel        string   // JIT_LOG_LEVEL

	// The approval function's mail, links and pages (docs/email-approval.md),
	// for its three entry points (approval, approvalEvents, approvalNotify):
	// wiring.NewApproval builds all three parts whichever is served.
	PagesURL     string // JIT_PAGES_URL: https://HOST the approval pages are served on (no path); links point there, and HOST is the mails' Message-ID domain
	MailFrom     string // JIT_MAIL_FROM: the sender address of the notifications
	SMTPHost     string // JIT_SMTP_HOST: the submission server, without a port
	SMTPPort     string // JIT_SMTP_PORT: optional; default 587 for starttls, 465 for tls
	SMTPSecurity string // JIT_SMTP_SECURITY: starttls (default) or tls; plaintext is for the local mailbox only
	SMTPUsername string // JIT_SMTP_USERNAME: optional; with it the sender authenticates
	// SMTPPasswordSecret (JIT_SMTP_PASSWORD_SECRET) is the Secret Manager
	// version holding the SMTP password, projects/P/secrets/S/versions/V
	// (V a number or latest), read when the function is built: the
	// password itself is never an environment variable, which anyone who
	// can view the function can read. Required with a username.
	SMTPPasswordSecret string
	// LinkSecret (JIT_LINK_SECRET) is the Secret Manager secret
	// projects/P/secrets/S whose enabled versions sign and verify the
	// approval links (approvallink.SecretManagerKeys); the pages' form
	// key is derived from its signing version (csrfKey).
	LinkSecret string

	// Classic is JIT Access's eligible-binding mode, under its option
	// names (classic.go).
	Classic classic.Env
}

// FromEnv reads the configuration from the environment.
func FromEnv() Config { return FromLookup(os.Getenv) }

// FromLookup reads the configuration from getenv, which returns "" for an
// unset variable: the environment, or the one Terraform plans for a
// function (terraform_test.go checks each planned function with it).
func FromLookup(getenv func(string) string) Config {
	c := Config{
		Project:     getenv("JIT_PROJECT"),
		EventsTopic: getenv("JIT_EVENTS_TOPIC"),
		RevokeQueue: getenv("JIT_REVOKE_QUEUE"),
		RevokeURL:   getenv("JIT_REVOKE_URL"),
		TasksSA:     getenv("JIT_TASKS_SERVICE_ACCOUNT"),
		Policy:      getenv("JIT_POLICY"),
		LogLevel:    getenv("JIT_LOG_LEVEL"),
	}
	c.LifecycleTopic = getenv("JIT_LIFECYCLE_TOPIC")
	c.RevokeTopic = getenv("JIT_REVOKE_TOPIC")
	c.Workflow = getenv("JIT_WORKFLOW")
	c.SweepURL = getenv("JIT_SWEEP_URL")
	c.SchedulerSA = getenv("JIT_SCHEDULER_SERVICE_ACCOUNT")
	for p, def := range map[*string]string{&c.EventsTopic: "jit-events", &c.LifecycleTopic: "jit-lifecycle", &c.RevokeTopic: "jit-revocations"} {
		if *p == "" {
			*p = def
		}
	}
	c.PagesURL = getenv("JIT_PAGES_URL")
	c.MailFrom = getenv("JIT_MAIL_FROM")
	c.SMTPHost = getenv("JIT_SMTP_HOST")
	c.SMTPPort = getenv("JIT_SMTP_PORT")
	c.SMTPSecurity = getenv("JIT_SMTP_SECURITY")
	if c.SMTPSecurity == "" {
		c.SMTPSecurity = mail.SecuritySTARTTLS
	}
	c.SMTPUsername = getenv("JIT_SMTP_USERNAME")
	c.SMTPPasswordSecret = getenv("JIT_SMTP_PASSWORD_SECRET")
	c.LinkSecret = getenv("JIT_LINK_SECRET")
	c.Classic = classic.FromLookup(getenv)
	c.RequestsAud = getenv("JIT_REQUESTS_AUDIENCE")
	if c.RequestsAud == "" {
		c.RequestsAud = "jit-requests"
	}
	c.IAPKeysURL = getenv("JIT_IAP_KEYS_URL")
	if c.IAPKeysURL == "" {
		c.IAPKeysURL = auth.IAPKeysURL
	}
	for _, a := range strings.Split(getenv("JIT_IAP_AUDIENCES"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.IAPAudiences = append(c.IAPAudiences, a)
		}
	}
	for _, d := range strings.Split(getenv("JIT_INTERNAL_DOMAINS"), ",") {
		if d = strings.TrimSpace(strings.ToLower(d)); d != "" {
			c.InternalDomains = append(c.InternalDomains, d)
		}
	}
	return c
}

// Validate reports every missing or malformed setting at once. Grant and
// revoke need the Cloud Tasks settings; the others do not.
func (c Config) Validate(needTasks bool) error {
	var errs []error
	if c.Project == "" {
		errs = append(errs, errors.New("JIT_PROJECT is required"))
	}
	if c.Policy == "" {
		errs = append(errs, errors.New("JIT_POLICY is required (secretmanager:projects/P/secrets/S or gs://bucket/object)"))
	}
	if _, err := c.Classic.Options(); err != nil {
		errs = append(errs, err)
	}
	if parts := strings.Split(c.Workflow, "/"); len(parts) != 6 || parts[0] != "projects" || parts[2] != "locations" || parts[4] != "workflows" {
		errs = append(errs, fmt.Errorf("JIT_WORKFLOW must be projects/P/locations/L/workflows/W, got %q", c.Workflow))
	}
	if needTasks {
		if !strings.HasPrefix(c.RevokeQueue, "projects/") || !strings.Contains(c.RevokeQueue, "/queues/") {
			errs = append(errs, fmt.Errorf("JIT_REVOKE_QUEUE must be projects/P/locations/L/queues/Q, got %q", c.RevokeQueue))
		}
		if !strings.HasPrefix(c.RevokeURL, "https://") {
			errs = append(errs, fmt.Errorf("JIT_REVOKE_URL must be an https URL, got %q", c.RevokeURL))
		}
		if !emailaddr.Valid(c.TasksSA) {
			errs = append(errs, fmt.Errorf("JIT_TASKS_SERVICE_ACCOUNT must be a service account email, got %q", c.TasksSA))
		}
	}
	return errors.Join(errs...)
}

// Targets are the entry points jit.go registers, by FUNCTION_TARGET.
var Targets = []string{"intake", "intakeRequests", "approval", "approvalEvents", "approvalNotify", "grant", "revoke", "revokeTask", "sweep"}

// ValidateFor reports every setting the entry point named function needs
// and lacks: what Validate checks (with the Cloud Tasks settings for the
// grant and revoke entry points), IAP's audience for the people-facing
// ones, the mail, link and pages settings for the approval function's
// entry points, Cloud Scheduler's identity for the sweep. It reads nothing
// but the configuration, so it is cheap enough to run at start.
func (c Config) ValidateFor(function string) error {
	var errs []error
	switch function {
	case "intake", "approval":
		errs = append(errs, c.Validate(false))
		if len(c.IAPAudiences) == 0 {
			errs = append(errs, errors.New("JIT_IAP_AUDIENCES is required: the IAP audience (/projects/NUMBER/locations/REGION/services/SERVICE) of this function"))
		}
		if function == "approval" {
			errs = append(errs, c.validateApproval())
		}
	case "approvalEvents", "approvalNotify":
		errs = append(errs, c.Validate(false), c.validateApproval())
	case "intakeRequests":
		errs = append(errs, c.Validate(false))
	case "grant", "revoke", "revokeTask":
		errs = append(errs, c.Validate(true))
	case "sweep":
		errs = append(errs, c.Validate(true), c.validateSweep())
	default:
		return fmt.Errorf("FUNCTION_TARGET %q is none of %s", function, strings.Join(Targets, ", "))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("the %s function is not configured: %w", function, err)
	}
	return nil
}

// validateSweep reports every problem with Cloud Scheduler's settings.
func (c Config) validateSweep() error {
	var errs []error
	if !strings.HasPrefix(c.SweepURL, "https://") {
		errs = append(errs, fmt.Errorf("JIT_SWEEP_URL must be the sweep function's https URL, got %q", c.SweepURL))
	}
	if !emailaddr.Valid(c.SchedulerSA) {
		errs = append(errs, fmt.Errorf("JIT_SCHEDULER_SERVICE_ACCOUNT must be a service account email, got %q", c.SchedulerSA))
	}
	return errors.Join(errs...)
}

// validateApproval reports every problem with the approval function's
// mail, link and pages settings.
func (c Config) validateApproval() error {
	var errs []error
	if _, err := pagesHost(c.PagesURL); err != nil {
		errs = append(errs, err)
	}
	if !emailaddr.Valid(c.MailFrom) {
		errs = append(errs, fmt.Errorf("JIT_MAIL_FROM must be the notifications' sender address, got %q", c.MailFrom))
	}
	switch {
	case c.SMTPHost == "":
		errs = append(errs, errors.New("JIT_SMTP_HOST is required: the SMTP submission server the notifications are sent through"))
	case strings.ContainsAny(c.SMTPHost, ":/@") || strings.ContainsFunc(c.SMTPHost, unicode.IsSpace):
		errs = append(errs, fmt.Errorf("JIT_SMTP_HOST must be a host name, without a port (that is JIT_SMTP_PORT), got %q", c.SMTPHost))
	}
	if _, err := c.smtpPort(); err != nil {
		errs = append(errs, err)
	}
	// Plaintext (mail.SecurityNone) is for a loopback server, which a
	// deployed function has none of; "" is mail's default, starttls.
	if c.SMTPSecurity != "" && c.SMTPSecurity != mail.SecuritySTARTTLS && c.SMTPSecurity != mail.SecurityTLS {
		errs = append(errs, fmt.Errorf("JIT_SMTP_SECURITY must be %s or %s, got %q", mail.SecuritySTARTTLS, mail.SecurityTLS, c.SMTPSecurity))
	}
	switch {
	case c.SMTPUsername != "" && c.SMTPPasswordSecret == "":
		errs = append(errs, errors.New("JIT_SMTP_PASSWORD_SECRET is required with JIT_SMTP_USERNAME: the Secret Manager version (projects/P/secrets/S/versions/V) of the SMTP password"))
	case c.SMTPUsername == "" && c.SMTPPasswordSecret != "":
		errs = append(errs, errors.New("JIT_SMTP_PASSWORD_SECRET is set without JIT_SMTP_USERNAME: a password needs the user it is for"))
	}
	if c.SMTPPasswordSecret != "" && !secretName(c.SMTPPasswordSecret, true) {
		errs = append(errs, fmt.Errorf("JIT_SMTP_PASSWORD_SECRET must be a Secret Manager version, projects/P/secrets/S/versions/V (V a number or latest), got %q", c.SMTPPasswordSecret))
	}
	if !secretName(c.LinkSecret, false) {
		errs = append(errs, fmt.Errorf("JIT_LINK_SECRET must be the Secret Manager secret of the approval link keys, projects/P/secrets/S, got %q", c.LinkSecret))
	}
	return errors.Join(errs...)
}

// pagesHost is the host of JIT_PAGES_URL, which must be an https origin:
// the links carry a bearer token, and the pages compare it with the
// Origin header of their forms, which has no path.
func pagesHost(pagesURL string) (string, error) {
	u, err := url.Parse(pagesURL)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || strings.HasSuffix(pagesURL, "?") || strings.HasSuffix(pagesURL, "#") {
		return "", fmt.Errorf("JIT_PAGES_URL must be the https origin the approval pages are served on, https://HOST with no path, got %q", pagesURL)
	}
	return u.Hostname(), nil
}

// smtpPort is JIT_SMTP_PORT; 0 (unset) lets package mail pick the port of
// the security.
func (c Config) smtpPort() (int, error) {
	if c.SMTPPort == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(c.SMTPPort)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("JIT_SMTP_PORT must be a port number, got %q", c.SMTPPort)
	}
	return n, nil
}

// secretName reports whether s is projects/P/secrets/S or, with version,
// projects/P/secrets/S/versions/V.
func secretName(s string, version bool) bool {
	p := strings.Split(s, "/")
	want := 4
	if version {
		want = 6
	}
	if len(p) != want || p[0] != "projects" || p[2] != "secrets" || slices.Contains(p, "") {
		return false
	}
	return !version || p[4] == "versions"
}

// Check validates the configuration of the served entry point (target is
// FUNCTION_TARGET, which Cloud Run functions set to the function's entry
// point; empty when several functions are served, e.g. in tests, which then
// report their configuration per request). jit.go exits when it fails, so a
// function missing a setting fails at start, naming it, and Cloud Run keeps
// serving the previous revision instead of one that answers 503.
func Check(target string) error {
	if target == "" {
		return nil
	}
	return FromEnv().ValidateFor(target)
}

// deps builds the clients of one function: with IAM and Cloud Tasks for
// grant and revoke only. ctx must outlive the function instance — the
// clients keep it for their connections and token refreshes — so callers
// pass context.Background(), never a request's context.
func deps(ctx context.Context, cfg Config, function string, privileged bool) (wiring.Deps, error) {
	log := logging.New(os.Stdout, logging.ParseLevel(cfg.LogLevel))
	if err := cfg.Validate(privileged); err != nil {
		return wiring.Deps{}, fmt.Errorf("the %s function is not configured: %w", function, err)
	}
	ledger, err := firestore.New(ctx, cfg.Project)
	if err != nil {
		return wiring.Deps{}, err
	}
	loader, err := source.ParseLocation(ctx, cfg.Policy)
	if err != nil {
		return wiring.Deps{}, err
	}
	docs, err := source.New(ctx, source.Config[*policy.Policy]{Loader: loader, Compile: policy.Compile, Logger: log.With("function", function, "component", "policy")})
	if err != nil {
		return wiring.Deps{}, err
	}
	var pol lifecycle.PolicySource = docs
	rm, err := newResourceManager(ctx)
	if err != nil {
		return wiring.Deps{}, err
	}
	if cfg.Classic.Enabled() && decidesOnEligibility(function) {
		opts, _ := cfg.Classic.Options() // checked by Validate
		opts.Hierarchy = &classic.ResourceManager{FolderClient: rm.folders, ProjectClient: rm.projects}
		opts.Projects, opts.Folders, opts.Organizations = rm.projects, rm.folders, rm.orgs
		opts.Logger = log.With("function", function, "component", "classic")
		cat, err := classic.NewCatalog(opts)
		if err != nil {
			return wiring.Deps{}, err
		}
		pol = classic.NewSource(docs, cat, opts.Logger)
	}
	ci, err := groups.NewCloudIdentity(ctx)
	if err != nil {
		return wiring.Deps{}, err
	}
	ps, err := pubsub.NewClient(ctx, cfg.Project)
	if err != nil {
		return wiring.Deps{}, fmt.Errorf("failed to create the Pub/Sub client: %w", err)
	}
	// Callbacks need an OAuth access token with workflows.callbacks.send
	// (docs/google-cloud.md §4): the function's own credentials, cloud-platform scope.
	hc, _, err := htransport.NewClient(ctx, option.WithScopes("https://www.googleapis.com/auth/cloud-platform"))
	if err != nil {
		return wiring.Deps{}, fmt.Errorf("failed to create the callback client: %w", err)
	}
	execs, err := executions.NewClient(ctx)
	if err != nil {
		return wiring.Deps{}, fmt.Errorf("failed to create the executions client: %w", err)
	}
	d := wiring.Deps{
		Ledger: ledger, Policy: pol, PolicyStatus: wiring.SourceStatus(docs), Groups: groups.NewCache(ci, groups.DefaultTTL, nil),
		// The ledger journals the notifications too; only the approval
		// function sends any (approvalDeps adds the rest).
		Journal: ledger,
		// Internal means IAP vouched for a hosted domain of the
		// organization; there is no directory lookup for others.
		InternalDomains: cfg.InternalDomains,
		Events:          events.NewPublisher(ps, cfg.EventsTopic),
		Lifecycle:       events.NewPublisher(ps, cfg.LifecycleTopic),
		Revocations:     events.NewPublisher(ps, cfg.RevokeTopic),
		Callbacks:       lifecycle.HTTPCallbacks{Endpoint: lifecycle.ExecutionsEndpoint, Client: hc},
		Workflow:        cfg.Workflow, ExecutionsURL: lifecycle.ExecutionsEndpoint, Executions: execs,
		Clock:       clock.Real(),
		RevokeQueue: cfg.RevokeQueue, RevokeURL: cfg.RevokeURL, TasksServiceAccount: cfg.TasksSA, Logger: log,
	}
	if !privileged {
		return d, nil
	}
	// Every instance of the grant and revoke functions writes IAM through
	// the ledger's write queue, so that concurrent activations on one
	// resource, spread over instances, still combine into few writes
	// within the Resource Manager quota (iambinding's package doc). The
	// grant and revoke identities hold the same role at the scope
	// (terraform/scope.tf), so either may apply the other's changes.
	if d.IAM, err = iambinding.New(iambinding.Config{
		Projects: rm.projects, Folders: rm.folders, Organizations: rm.orgs,
		Logger: log.With("function", function, "component", "iambinding"),
		Queue:  ledger.IAMQueue(),
	}); err != nil {
		return wiring.Deps{}, err
	}
	if d.Tasks, err = cloudtasks.NewClient(ctx); err != nil {
		return wiring.Deps{}, fmt.Errorf("failed to create the Cloud Tasks client: %w", err)
	}
	return d, nil
}

// decidesOnEligibility reports whether an entry point takes decisions on
// entitlements, and so needs JIT Access's eligible bindings: not the
// revoke function's, which only removes what was granted.
func decidesOnEligibility(function string) bool {
	switch function {
	case "revoke", "revokeTask", "sweep":
		return false
	}
	return true
}

// resourceManagerClients are the three Resource Manager v3 clients.
type resourceManagerClients struct {
	projects *resourcemanager.ProjectsClient
	folders  *resourcemanager.FoldersClient
	orgs     *resourcemanager.OrganizationsClient
}

// newResourceManager dials the clients; gRPC connects lazily, so a
// function that never calls them pays nothing but the construction.
func newResourceManager(ctx context.Context) (resourceManagerClients, error) {
	var rm resourceManagerClients
	var err error
	if rm.projects, err = resourcemanager.NewProjectsClient(ctx); err != nil {
		return rm, fmt.Errorf("failed to create the Resource Manager projects client: %w", err)
	}
	if rm.folders, err = resourcemanager.NewFoldersClient(ctx); err != nil {
		return rm, fmt.Errorf("failed to create the Resource Manager folders client: %w", err)
	}
	if rm.orgs, err = resourcemanager.NewOrganizationsClient(ctx); err != nil {
		return rm, fmt.Errorf("failed to create the Resource Manager organizations client: %w", err)
	}
	return rm, nil
}

// tasksAuth is the revokeTask function's rule: a Google-signed token for
// its own URL, from the configured tasks service account only.
func tasksAuth(cfg Config) (auth.Service, error) {
	v, err := auth.NewGoogle(auth.GoogleConfig{})
	if err != nil {
		return auth.Service{}, err
	}
	return auth.Service{Verifier: v, Audience: cfg.RevokeURL, Allowed: []string{strings.ToLower(cfg.TasksSA)}}, nil
}

// sweepAuth is the sweep function's rule: a Google-signed token for its
// own URL, from Cloud Scheduler's service account only.
func sweepAuth(cfg Config) (auth.Service, error) {
	if err := cfg.validateSweep(); err != nil {
		return auth.Service{}, err
	}
	v, err := auth.NewGoogle(auth.GoogleConfig{})
	if err != nil {
		return auth.Service{}, err
	}
	return auth.Service{Verifier: v, Audience: cfg.SweepURL, Allowed: []string{strings.ToLower(cfg.SchedulerSA)}}, nil
}

// iap is the authenticator of people for intake and approval. Without an
// audience the function refuses to start, and says why.
func iap(cfg Config) (*auth.IAP, error) {
	return auth.NewIAP(auth.IAPConfig{Audiences: cfg.IAPAudiences, KeysURL: cfg.IAPKeysURL})
}
