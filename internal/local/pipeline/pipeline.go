// Package pipeline is the embedded default (docs/architecture.md §7): the whole
// pipeline in one process on loopback, with no Google account. The four
// functions run against the embedded Google Cloud through the same client
// libraries as on Google Cloud; events travel through Pub/Sub and the push
// bridge (Eventarc), the lifecycle workflow runs in the local runner, the
// ledger is a SQLite file. Everything durable lives under one data
// directory, so a restart — even kill -9 — loses nothing: pending
// approvals, active grants and scheduled revocations carry on.
//
// One HTTP server serves it all:
//
//	/v1/…                   the API (intake and approval functions)
//	/functions/approval     CloudEvents: approval.requested   (approval function)
//	/functions/grant        CloudEvents: activation.requested (grant function)
//	/functions/revoke       CloudEvents: revoke.requested     (revoke function)
//	/functions/revoke-task  Cloud Tasks: the revocation at the end time (revoke function)
//	/eventarc/grant-lifecycle  Eventarc → Workflows: grant.requested starts an execution
//	/v1/projects/…/callbacks/…  workflow callbacks
//	/local/iam/{resource}   the emulated IAM policy of a resource (local mode only)
//
// CloudEvent functions are wrapped with the CloudEvents SDK's receive
// handler, exactly as functions-framework-go wraps them; on Google Cloud the
// root package registers the same functions with functions-framework.
package pipeline

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	cloudtasks "cloud.google.com/go/cloudtasks/apiv2"
	"cloud.google.com/go/iam/apiv1/iampb"
	resourcemanager "cloud.google.com/go/resourcemanager/apiv3"
	executions "cloud.google.com/go/workflows/executions/apiv1"
	"cloud.google.com/go/workflows/executions/apiv1/executionspb"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/jitpipeline/jit/internal/api"
	"github.com/jitpipeline/jit/internal/approvallink"
	"github.com/jitpipeline/jit/internal/auth"
	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/envelope"
	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/iambinding"
	"github.com/jitpipeline/jit/internal/ledger/sqlite"
	"github.com/jitpipeline/jit/internal/lifecycle"
	"github.com/jitpipeline/jit/internal/local/gcp/embedded"
	"github.com/jitpipeline/jit/internal/local/gcp/localiam"
	"github.com/jitpipeline/jit/internal/local/gcp/pushbridge"
	"github.com/jitpipeline/jit/internal/local/gcp/wfrunner"
	"github.com/jitpipeline/jit/internal/local/mailbox"
	"github.com/jitpipeline/jit/internal/local/world"
	"github.com/jitpipeline/jit/internal/mail"
	"github.com/jitpipeline/jit/internal/pages"
	"github.com/jitpipeline/jit/internal/policy"
	"github.com/jitpipeline/jit/internal/policy/classic"
	"github.com/jitpipeline/jit/internal/policy/source"
	"github.com/jitpipeline/jit/internal/wiring"
	"github.com/jitpipeline/jit/workflows"
)

//go:embed demo-policy.yaml
var demoPolicy []byte

// DemoPolicy is the policy used when none is given.
func DemoPolicy() []byte { return append([]byte(nil), demoPolicy...) }

// The names of the local deployment.
const (
	Project  = "jit-local"
	Location = "us-central1"
	// Topic carries the grants' transitions (the audit trail); the other
	// topics each start one thing, as Eventarc triggers cannot filter
	// Pub/Sub messages by attribute: LifecycleTopic (grant.requested) the
	// workflow, ApprovalTopic, ActivationTopic and RevokeTopic the
	// workflow's commands to the approval, grant and revoke functions.
	Topic           = "jit-events"
	LifecycleTopic  = "jit-lifecycle"
	ApprovalTopic   = "jit-approvals"
	ActivationTopic = "jit-activations"
	RevokeTopic     = "jit-revocations"
	Queue           = "revocations"
	Workflow        = "grant-lifecycle"
	domainSA        = "@" + Project + ".iam.gserviceaccount.com"
	IntakeSA        = "jit-intake" + domainSA
	ApproveSA       = "jit-approval" + domainSA
	GrantSA         = "jit-grant" + domainSA
	RevokeSA        = "jit-revoke" + domainSA
	FlowSA          = "jit-lifecycle" + domainSA
	EventsSA        = "jit-eventarc" + domainSA
	TasksSA         = "jit-tasks" + domainSA
	// SchedulerSA is Cloud Scheduler's identity: the only caller of the
	// sweep entry point, POST /functions/sweep (as on Google Cloud).
	SchedulerSA = "jit-scheduler" + domainSA
	// RequestsTopic carries signed requests from other systems;
	// RequestsAudience is the audience their envelopes name. The demo
	// policy trusts IncidentBotSA to request on behalf of users.
	RequestsTopic    = "jit-requests"
	RequestsAudience = "jit-requests"
	IncidentBotSA    = "incident-bot" + domainSA
)

// Config configures the embedded pipeline.
type Config struct {
	DataDir string
	// Addr is the loopback address of the one HTTP server. Keep the port
	// stable across restarts: callback URLs and task URLs point at it.
	Addr string
	// PolicyFile is watched and reloaded; empty means the demo policy.
	PolicyFile string
	// Classic are JIT Access's options (classic.FromLookup of the
	// environment, in jit local): eligible role bindings in the IAM
	// policies of Classic.Scope become entitlements. An empty scope means
	// the world's organization; NoClassic turns the mode off.
	Classic   classic.Env
	NoClassic bool
	// World is the emulated organization; nil means world.Default().
	World *world.World
	// Clock drives every timer; nil means real time. Tests speed it up.
	Clock clock.Clock
	// PubSubEmulatorHost uses Google's emulator instead of pstest.
	PubSubEmulatorHost string
	// Chaos makes event delivery duplicate and reorder, for tests.
	Chaos pushbridge.Chaos
	// SweepInterval is how often the built-in scheduler runs the sweep
	// (default 30 s); negative leaves it to calls of POST /functions/sweep,
	// as on Google Cloud without a Cloud Scheduler job.
	SweepInterval time.Duration
	// IAP, if set, is production-auth mode: people are authenticated by
	// IAP assertions verified against these settings (a test key set
	// locally), the debug principal header is refused, and service tokens
	// go through the strict Google ID token verifier (fed the local token
	// service's keys) instead of the local signer's own check.
	IAP *auth.IAPConfig
	// RateLimit bounds each caller's changing API calls (default
	// api.DefaultRateLimit).
	RateLimit *api.RateLimit
	// ActivationTimeout is how long the workflow waits for the grant
	// function before it gives up and revokes (default 10 minutes). It is
	// on Clock's time, so tests that run the clock fast raise it: the IAM
	// write does not speed up with the clock.
	ActivationTimeout time.Duration
	Logger            *slog.Logger
}

// Pipeline is the running embedded pipeline.
type Pipeline struct {
	URL string
	// DataDir holds the pipeline's state (Config.DataDir).
	DataDir string
	Cloud   *embedded.Cloud
	Ledger  *sqlite.Ledger
	Policy  *source.Source[*policy.Policy]
	// Catalog holds the eligible bindings of Config.Classic (nil with
	// NoClassic); the intake, approval and grant functions see its
	// entitlements beside the policy document's.
	Catalog *classic.Catalog
	World   *world.World
	Clock   clock.Clock
	// ServiceVerifier checks the pipeline's service tokens (push,
	// tasks, callbacks).
	ServiceVerifier auth.TokenVerifier
	// Mailbox is the local mail server the functions send to over SMTP;
	// every message it accepted, at /local/mail.
	Mailbox *mailbox.Mailbox

	closers []func() error
	cancel  context.CancelFunc
}

// Start builds and starts the pipeline.
func Start(ctx context.Context, cfg Config) (_ *Pipeline, retErr error) {
	if cfg.DataDir == "" {
		return nil, errors.New("pipeline: DataDir is required")
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8080"
	}
	if cfg.World == nil {
		cfg.World = world.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = 30 * time.Second
	}
	if cfg.ActivationTimeout == 0 {
		cfg.ActivationTimeout = 10 * time.Minute
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create the data directory: %w", err)
	}
	log := cfg.Logger
	p := &Pipeline{World: cfg.World, Clock: cfg.Clock, DataDir: cfg.DataDir}
	defer func() {
		if retErr != nil {
			p.Close()
		}
	}()

	// The handler is built once the cloud's clients exist; the server
	// starts first, so it serves through this indirection.
	var handler atomic.Pointer[http.Handler]
	notReady := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "starting", http.StatusServiceUnavailable)
	}))
	handler.Store(&notReady)
	// 80 pushes in flight per subscription: one Cloud Run instance's
	// default request concurrency, the least a push subscription to a
	// function gets on Google Cloud. Fewer would hold back the grant
	// function's coalescing: each IAM write carries the activations in
	// flight at that moment.
	route := func(path, sa string) pushbridge.Route {
		return pushbridge.Route{Endpoint: path, OIDC: &pushbridge.OIDC{ServiceAccountEmail: sa},
			MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second, AckDeadline: 60 * time.Second,
			Concurrency: 80, Chaos: cfg.Chaos}
	}
	trigger := func(topic, sub, path string) pushbridge.Route {
		r := route(path, EventsSA)
		r.Topic, r.Subscription = topic, sub
		return r
	}
	routes := []pushbridge.Route{
		trigger(LifecycleTopic, "eventarc-grant-lifecycle", "/eventarc/grant-lifecycle"),
		trigger(ApprovalTopic, "approval", "/functions/approval"),
		trigger(ActivationTopic, "grant", "/functions/grant"),
		trigger(RevokeTopic, "revoke", "/functions/revoke"),
		trigger(RequestsTopic, "intake-requests", "/functions/intake-requests"),
		trigger(Topic, "approval-notify", "/functions/approval-notify"),
	}
	var cloud *embedded.Cloud
	cloud, err := embedded.Start(ctx, embedded.Config{
		DataDir: cfg.DataDir, Project: Project, Location: Location,
		HTTPAddr: cfg.Addr, PubSubEmulatorHost: cfg.PubSubEmulatorHost,
		WorkflowServiceAccount: FlowSA,
		WorkflowEnv: map[string]string{
			"JIT_APPROVAL_TOPIC":     ApprovalTopic,
			"JIT_ACTIVATION_TOPIC":   ActivationTopic,
			"JIT_REVOKE_TOPIC":       RevokeTopic,
			"JIT_ACTIVATION_TIMEOUT": strconv.Itoa(int(cfg.ActivationTimeout.Seconds())),
		},
		Queues:            []string{Queue},
		Seed:              cfg.World.Seed,
		GroupMembers:      cfg.World.DirectMembers,
		Routes:            routes,
		Clock:             cfg.Clock,
		AuthorizeCallback: func(r *http.Request) error { return authorizeCallback(cloud, r) },
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) }),
		Logger:            log,
	})
	if err != nil {
		return nil, err
	}
	p.Cloud, p.URL = cloud, cloud.HTTPURL
	p.closers = append(p.closers, cloud.Close)
	if err := deployWorkflows(cloud); err != nil {
		return nil, err
	}

	if p.Ledger, err = sqlite.Open(filepath.Join(cfg.DataDir, "ledger.db"), sqlite.WithClock(cfg.Clock)); err != nil {
		return nil, fmt.Errorf("failed to open the ledger: %w", err)
	}
	p.closers = append(p.closers, p.Ledger.Close)
	if p.Mailbox, err = mailbox.Open(mailbox.Config{Dir: filepath.Join(cfg.DataDir, "mail"), Clock: cfg.Clock, Logger: log.With("component", "mailbox")}); err != nil {
		return nil, fmt.Errorf("failed to start the local mail server: %w", err)
	}
	p.closers = append(p.closers, p.Mailbox.Close)

	var loader source.Loader = staticLoader(demoPolicy)
	if cfg.PolicyFile != "" {
		if loader, err = source.NewFileLoader(cfg.PolicyFile); err != nil {
			return nil, err
		}
	}
	if p.Policy, err = source.New(ctx, source.Config[*policy.Policy]{
		Loader: loader, Compile: policy.Compile, Now: cfg.Clock.Now, Logger: log.With("component", "policy"),
		OnReject: func(ctx context.Context, r source.Rejection) {
			log.ErrorContext(ctx, "policy version refused", "policy_version", r.Version, "kept_version", r.KeptVersion, "error", r.Err)
		},
	}); err != nil {
		return nil, fmt.Errorf("failed to load the policy: %w", err)
	}

	ps, err := cloud.PubSub.NewClient(ctx, Project)
	if err != nil {
		return nil, err
	}
	p.closers = append(p.closers, ps.Close)
	// The transitions topic has no trigger here: it is for other systems.
	if err := pushbridge.EnsureTopic(ctx, ps, Topic); err != nil {
		return nil, err
	}
	publisher := func(topic string) *events.Publisher {
		pub := events.NewPublisher(ps, topic)
		p.closers = append(p.closers, func() error { pub.Stop(); return nil })
		return pub
	}
	eventsPub, lifecyclePub, revokePub := publisher(Topic), publisher(LifecycleTopic), publisher(RevokeTopic)

	tasks, err := cloudtasks.NewClient(ctx, cloud.ClientOptions()...)
	if err != nil {
		return nil, fmt.Errorf("failed to create the Cloud Tasks client: %w", err)
	}
	p.closers = append(p.closers, tasks.Close)

	iamQueue := p.Ledger.IAMQueue().WithClock(clock.Real())
	iamAs := func(sa string) (lifecycle.IAM, error) {
		rm, err := p.resourceManager(ctx, append(cloud.ClientOptions(), option.WithGRPCDialOption(grpc.WithUnaryInterceptor(localiam.UnaryClientInterceptor("serviceAccount:"+sa))))...)
		if err != nil {
			return nil, err
		}
		// The grant and revoke writers share the ledger's write queue, as
		// their function instances do on Google Cloud (deploy.go): writes
		// to one resource go through one lease holder at a time, whoever
		// asked for them. Waiters look every 2–10 ms: the ledger is local.
		return iambinding.New(iambinding.Config{
			Projects: rm.projects, Folders: rm.folders, Organizations: rm.orgs, Now: cfg.Clock.Now,
			Logger: log.With("component", "iambinding", "identity", sa),
			Queue:  iamQueue, PollInterval: 10 * time.Millisecond,
		})
	}
	grantIAM, err := iamAs(GrantSA)
	if err != nil {
		return nil, fmt.Errorf("failed to create the grant function's IAM clients: %w", err)
	}
	revokeIAM, err := iamAs(RevokeSA)
	if err != nil {
		return nil, fmt.Errorf("failed to create the revoke function's IAM clients: %w", err)
	}

	execs, err := executions.NewClient(ctx, cloud.ClientOptions()...)
	if err != nil {
		return nil, fmt.Errorf("failed to create the executions client: %w", err)
	}
	p.closers = append(p.closers, execs.Close)
	workflow := fmt.Sprintf("projects/%s/locations/%s/workflows/%s", Project, Location, Workflow)
	// The same composition as on Google Cloud (package wiring); here all
	// four functions share the process, each with its own identity for
	// callbacks and IAM.
	var decisions lifecycle.PolicySource = p.Policy
	if !cfg.NoClassic {
		if decisions, err = p.classic(ctx, cfg, cloud, log); err != nil {
			return nil, err
		}
	}
	base := wiring.Deps{
		Ledger: p.Ledger, Policy: decisions, PolicyStatus: wiring.SourceStatus(p.Policy), Groups: cfg.World.Resolver(),
		InternalDomains: []string{cfg.World.Organization.Domain}, Directory: cfg.World.HostedDomain,
		Events: eventsPub, Lifecycle: lifecyclePub, Revocations: revokePub, Clock: cfg.Clock,
		RevokeQueue: fmt.Sprintf("projects/%s/locations/%s/queues/%s", Project, Location, Queue),
		RevokeURL:   cloud.HTTPURL + "/functions/revoke-task", TasksServiceAccount: TasksSA,
		Workflow: workflow, ExecutionsURL: cloud.HTTPURL, Executions: execs, Logger: log,
	}
	// The approval function's mail goes over SMTP to the local mailbox;
	// its link and form keys live under the data directory.
	sender, err := localSender(p.Mailbox.Addr(), cfg.World.Organization.Domain, log)
	if err != nil {
		return nil, err
	}
	_, csrfKey, err := approvallink.FileKeys(filepath.Join(cfg.DataDir, "csrf.key")).SigningKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to read the pages' form key: %w", err)
	}
	base.Mail, base.Journal = sender, p.Ledger
	base.MailFrom, base.MailDomain = mailFrom(cfg.World.Organization.Domain), "jit.local"
	base.LinkKeys = approvallink.FileKeys(filepath.Join(cfg.DataDir, "approval-link.key"))
	base.PagesURL, base.CSRFKey = cloud.HTTPURL, csrfKey
	if cfg.IAP == nil {
		base.SignInURL = pages.LoginPath
	}
	as := func(sa string, iam lifecycle.IAM, withTasks bool) wiring.Deps {
		d := base
		d.Callbacks = lifecycle.HTTPCallbacks{Endpoint: cloud.HTTPURL, Token: func(context.Context) (string, error) { return cloud.Signer.AccessToken(sa) }}
		d.IAM = iam
		if withTasks {
			d.Tasks = tasks
		}
		return d
	}
	intakeFn, err := wiring.NewIntake(as(IntakeSA, nil, false))
	if err != nil {
		return nil, err
	}
	approvalFn, err := wiring.NewApproval(as(ApproveSA, nil, false))
	if err != nil {
		return nil, err
	}
	grantFn, err := wiring.NewGrant(as(GrantSA, grantIAM, true))
	if err != nil {
		return nil, err
	}
	// The revoke function only removes what was granted: it decides on
	// no entitlement and reads no eligible bindings (as deployed).
	revokeDeps := as(RevokeSA, revokeIAM, true)
	revokeDeps.Policy = p.Policy
	revokeFn, err := wiring.NewRevoke(revokeDeps)
	if err != nil {
		return nil, err
	}

	operator, err := p.resourceManager(ctx, cloud.ClientOptions()...)
	if err != nil {
		return nil, err
	}

	// Service tokens go through the production verifier, fed the local
	// token service's keys: one verification path in both modes.
	// Tokens live in real time (the local signer mints them so), whatever
	// the pipeline clock says.
	google, err := auth.NewGoogle(auth.GoogleConfig{KeysJSON: cloud.Signer.JWKS()})
	if err != nil {
		return nil, fmt.Errorf("failed to build the service token verifier: %w", err)
	}
	var userAuth api.Authenticator = api.LocalAuthenticator{}
	var serviceVerifier auth.TokenVerifier = google
	if cfg.IAP != nil {
		iap, err := auth.NewIAP(*cfg.IAP)
		if err != nil {
			return nil, fmt.Errorf("production-auth mode: %w", err)
		}
		userAuth = iap
	}
	p.ServiceVerifier = serviceVerifier
	pushAuth := auth.Service{Verifier: serviceVerifier, Allowed: []string{EventsSA}}
	ceHandler := func(path string, fn func(context.Context, cloudevents.Event) error) (http.Handler, error) {
		// As functions-framework-go serves a CloudEvent function, one
		// request at a time (cloudEventHandler).
		h := cloudEventHandler(fn)
		a := pushAuth
		a.Audience = cloud.HTTPURL + path
		return a.Middleware(h), nil
	}
	mux := http.NewServeMux()
	limit := api.DefaultRateLimit
	if cfg.RateLimit != nil {
		limit = *cfg.RateLimit
	}
	intakeAPI := intakeFn.HTTP(userAuth).WithRateLimit(limit)
	approvalAPI := approvalFn.HTTP(userAuth).WithRateLimit(limit)
	mux.Handle("/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A load balancer's path rules on Google Cloud: decisions go to the
		// approval function, the rest to intake.
		if strings.HasSuffix(r.URL.Path, ":approve") || strings.HasSuffix(r.URL.Path, ":deny") {
			approvalAPI.ServeHTTP(w, r)
			return
		}
		intakeAPI.ServeHTTP(w, r)
	}))
	requests, err := intakeFn.Requests(envelope.JWKSFunc(localKeys{cloud.Signer.JWKS()}.Keys), RequestsAudience)
	if err != nil {
		return nil, fmt.Errorf("failed to configure the envelope verifier: %w", err)
	}
	for path, fn := range map[string]func(context.Context, cloudevents.Event) error{
		"/functions/intake-requests": requests,
		"/functions/approval":        approvalFn.Events(),
		"/functions/approval-notify": approvalFn.Notify(),
		"/functions/grant":           grantFn.Events(),
		"/functions/revoke":          revokeFn.Events(),
		"/eventarc/grant-lifecycle":  startWorkflow(execs, workflow, log),
	} {
		h, err := ceHandler(path, fn)
		if err != nil {
			return nil, err
		}
		mux.Handle("POST "+path, h)
	}
	mux.Handle("POST /functions/revoke-task", revokeFn.Tasks(
		auth.Service{Verifier: serviceVerifier, Audience: cloud.HTTPURL + "/functions/revoke-task", Allowed: []string{TasksSA}}))
	mux.Handle("POST /functions/sweep", revokeFn.Sweep(
		auth.Service{Verifier: serviceVerifier, Audience: cloud.HTTPURL + "/functions/sweep", Allowed: []string{SchedulerSA}}))
	var iap *auth.IAP
	if cfg.IAP != nil {
		iap = userAuth.(*auth.IAP)
	}
	approvalPages, err := approvalFn.Pages(pageCaller(iap))
	if err != nil {
		return nil, fmt.Errorf("failed to build the approval pages: %w", err)
	}
	mux.Handle("/approvals/", approvalPages)
	portal, err := intakeFn.Portal(pageCaller(iap), base.SignInURL)
	if err != nil {
		return nil, fmt.Errorf("failed to build the people's pages: %w", err)
	}
	mux.Handle("/", portal)
	if cfg.IAP == nil {
		// Local conveniences exist in local mode only.
		mux.Handle("GET /local/iam/{resource...}", localIAM(operator))
		mux.Handle("GET /local/mail", p.Mailbox)
		login, err := pages.LocalLogin(pages.LocalLoginConfig{Users: cfg.World.UserEmails, Logger: log.With("component", "login")})
		if err != nil {
			return nil, err
		}
		mux.Handle(pages.LoginPath, login)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	h := sameHostOnly(cloud.HTTPURL, mux)
	handler.Store(&h)

	sweepCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel = cancel
	if cfg.SweepInterval > 0 {
		go p.sweep(sweepCtx, revokeFn.Service, cfg.SweepInterval, log)
	}
	mode := "local"
	if cfg.IAP != nil {
		mode = "production-auth"
	}
	log.Info("embedded pipeline started", "url", p.URL, "data_dir", cfg.DataDir, "mode", mode)
	return p, nil
}

// localSender submits mail to the local mailbox over SMTP, as the
// functions submit to the configured server on Google Cloud.
func localSender(addr, domain string, log *slog.Logger) (*mail.SMTP, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("mailbox address %q: %w", addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("mailbox address %q: %w", addr, err)
	}
	return mail.NewSMTP(mail.SMTPConfig{
		Host: host, Port: n, Security: mail.SecurityNone, From: mailFrom(domain),
		Attempts: 3, Backoff: 50 * time.Millisecond, Logger: log.With("component", "smtp"),
	})
}

func mailFrom(domain string) string {
	if domain == "" {
		domain = "example.com"
	}
	return "jit@" + domain
}

// pageCaller identifies people on the approval pages: through IAP when the
// pipeline runs with production authentication, else by the local user
// picker's cookie or, for scripts, the X-Debug-Principal header — both
// honoured from loopback only.
func pageCaller(iap *auth.IAP) pages.Authenticator {
	return pages.AuthenticatorFunc(func(r *http.Request) (lifecycle.Caller, error) {
		if iap != nil {
			id, err := iap.Identify(r)
			if err != nil {
				return lifecycle.Caller{}, err
			}
			return lifecycle.Caller{Email: id.Email, HostedDomain: id.HostedDomain}, nil
		}
		if email, ok := pages.LocalCookieCaller(r); ok {
			return lifecycle.Caller{Email: email}, nil
		}
		email, err := api.LocalAuthenticator{}.Caller(r)
		if err != nil {
			return lifecycle.Caller{}, err
		}
		return lifecycle.Caller{Email: email}, nil
	})
}

func deployWorkflows(cloud *embedded.Cloud) error {
	files, err := fs.Glob(workflows.FS, "*.yaml")
	if err != nil {
		return err
	}
	for _, f := range files {
		src, err := workflows.FS.ReadFile(f)
		if err != nil {
			return err
		}
		if err := cloud.Workflows.Deploy(strings.TrimSuffix(f, ".yaml"), src); err != nil {
			return fmt.Errorf("failed to deploy %s: %w", f, err)
		}
	}
	return nil
}

// sweep re-publishes events a crash left unpublished, as a scheduled job
// of the revoke function does on Google Cloud.
func (p *Pipeline) sweep(ctx context.Context, svc *lifecycle.RevokeService, every time.Duration, log *slog.Logger) {
	if err := svc.Sweep(ctx); err != nil {
		log.WarnContext(ctx, "sweep failed", "error", err)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := svc.Sweep(ctx); err != nil {
				log.WarnContext(ctx, "sweep failed", "error", err)
			}
		}
	}
}

// Close stops everything; the data directory keeps the state.
func (p *Pipeline) Close() error {
	if p.cancel != nil {
		p.cancel()
	}
	var errs []error
	for i := len(p.closers) - 1; i >= 0; i-- {
		if err := p.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	p.closers = nil
	return errors.Join(errs...)
}

// startWorkflow is the local Eventarc trigger for Workflows: it starts an
// execution with the CloudEvent, converted to JSON, as its argument, as
// Eventarc does (docs/google-cloud.md §4).
func startWorkflow(execs *executions.Client, workflow string, log *slog.Logger) func(context.Context, cloudevents.Event) error {
	return func(ctx context.Context, e cloudevents.Event) error {
		var data any
		if err := json.Unmarshal(e.Data(), &data); err != nil {
			log.ErrorContext(ctx, "refused an event that is not JSON", "event_id", e.ID())
			return nil
		}
		arg, err := json.Marshal(map[string]any{
			"specversion": e.SpecVersion(), "id": e.ID(), "source": e.Source(), "type": e.Type(),
			"time": e.Time().Format(time.RFC3339Nano), "datacontenttype": e.DataContentType(), "data": data,
		})
		if err != nil {
			return err
		}
		ex, err := execs.CreateExecution(ctx, &executionspb.CreateExecutionRequest{Parent: workflow, Execution: &executionspb.Execution{Argument: string(arg)}})
		if err != nil {
			return fmt.Errorf("failed to start %s: %w", workflow, err)
		}
		log.InfoContext(ctx, "workflow execution started", "execution", ex.GetName(), "event_id", e.ID())
		return nil
	}
}

// resourceManagerClients are the three Resource Manager clients, one per
// kind of resource that has an IAM policy.
type resourceManagerClients struct {
	projects *resourcemanager.ProjectsClient
	folders  *resourcemanager.FoldersClient
	orgs     *resourcemanager.OrganizationsClient
}

func (p *Pipeline) resourceManager(ctx context.Context, opts ...option.ClientOption) (*resourceManagerClients, error) {
	var rm resourceManagerClients
	var err error
	if rm.projects, err = resourcemanager.NewProjectsClient(ctx, opts...); err != nil {
		return nil, fmt.Errorf("failed to create the Resource Manager clients: %w", err)
	}
	p.closers = append(p.closers, rm.projects.Close)
	if rm.folders, err = resourcemanager.NewFoldersClient(ctx, opts...); err != nil {
		return nil, fmt.Errorf("failed to create the Resource Manager clients: %w", err)
	}
	p.closers = append(p.closers, rm.folders.Close)
	if rm.orgs, err = resourcemanager.NewOrganizationsClient(ctx, opts...); err != nil {
		return nil, fmt.Errorf("failed to create the Resource Manager clients: %w", err)
	}
	p.closers = append(p.closers, rm.orgs.Close)
	return &rm, nil
}

// classic builds the catalog of JIT Access's eligible bindings, read as
// the intake function (the world grants the deciding functions browse and
// getIamPolicy on the organization, as terraform/ does at the scope).
func (p *Pipeline) classic(ctx context.Context, cfg Config, cloud *embedded.Cloud, log *slog.Logger) (lifecycle.PolicySource, error) {
	env := cfg.Classic
	if !env.Enabled() {
		env.Scope = "organizations/" + cfg.World.Organization.ID
	}
	opts, err := env.Options()
	if err != nil {
		return nil, err
	}
	rm, err := p.resourceManager(ctx, append(cloud.ClientOptions(), option.WithGRPCDialOption(grpc.WithUnaryInterceptor(localiam.UnaryClientInterceptor("serviceAccount:"+IntakeSA))))...)
	if err != nil {
		return nil, err
	}
	opts.Hierarchy = &classic.ResourceManager{FolderClient: rm.folders, ProjectClient: rm.projects}
	opts.Projects, opts.Folders, opts.Organizations = rm.projects, rm.folders, rm.orgs
	opts.Now, opts.Logger = cfg.Clock.Now, log.With("component", "classic")
	if p.Catalog, err = classic.NewCatalog(opts); err != nil {
		return nil, err
	}
	return classic.NewSource(p.Policy, p.Catalog, opts.Logger), nil
}

// localIAM serves a resource's emulated IAM policy in the REST JSON form.
func localIAM(rm *resourceManagerClients) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := r.PathValue("resource")
		req := &iampb.GetIamPolicyRequest{Resource: res, Options: &iampb.GetPolicyOptions{RequestedPolicyVersion: 3}}
		var pol *iampb.Policy
		var err error
		switch {
		case strings.HasPrefix(res, "projects/"):
			pol, err = rm.projects.GetIamPolicy(r.Context(), req)
		case strings.HasPrefix(res, "folders/"):
			pol, err = rm.folders.GetIamPolicy(r.Context(), req)
		case strings.HasPrefix(res, "organizations/"):
			pol, err = rm.orgs.GetIamPolicy(r.Context(), req)
		default:
			http.Error(w, `{"error":{"code":"INVALID_ARGUMENT","field":"resource","message":"want projects/ID, folders/ID or organizations/ID"}}`, http.StatusBadRequest)
			return
		}
		if err != nil {
			http.Error(w, fmt.Sprintf(`{"error":{"code":"NOT_FOUND","field":"resource","message":%q}}`, err.Error()), http.StatusNotFound)
			return
		}
		b, _ := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(pol)
		w.Header().Set("Content-Type", "application/json")
		w.Write(b) //nolint:errcheck // client gone
	})
}

// localKeys is the key source of envelopes locally: every service account
// of the local project signs with the local token service's key; others
// are unknown.
type localKeys struct{ jwks []byte }

func (k localKeys) Keys(_ context.Context, issuer string) ([]byte, error) {
	if !strings.HasSuffix(strings.ToLower(issuer), domainSA) {
		return nil, envelope.ErrUnknownIssuer
	}
	return k.jwks, nil
}

// staticLoader serves the embedded demo policy as a policy source.
type staticLoader []byte

func (s staticLoader) Load(context.Context) ([]byte, string, error) {
	return []byte(s), "embedded-demo", nil
}

// CallbackSenders are the identities that hold workflows.callbacks.send on
// the lifecycle workflow: the functions that resume its executions —
// intake (withdraw, admin revoke), approval (decisions) and grant
// (activation). The revoke function never calls back.
var CallbackSenders = []string{IntakeSA, ApproveSA, GrantSA}

// authorizeCallback checks a workflow callback as Google does: the bearer
// must be an OAuth 2.0 access token (an ID token, an IAP assertion or none
// is 401), issued to an identity with workflows.callbacks.send (otherwise
// 403) — https://cloud.google.com/workflows/docs/creating-callback-endpoints,
// docs/google-cloud.md §4.
func authorizeCallback(cloud *embedded.Cloud, r *http.Request) error {
	if cloud == nil {
		return fmt.Errorf("%w: starting", wfrunner.ErrUnauthenticated)
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return wfrunner.ErrUnauthenticated
	}
	email, ok := cloud.Signer.LookupAccessToken(tok)
	if !ok {
		return wfrunner.ErrUnauthenticated
	}
	if !slices.Contains(CallbackSenders, email) {
		return fmt.Errorf("permission workflows.callbacks.send denied for %s", email)
	}
	return nil
}
