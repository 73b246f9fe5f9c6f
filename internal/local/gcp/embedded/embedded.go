// Package embedded assembles the embedded Google Cloud: the local IAM
// (Resource Manager v3), Cloud Tasks and Workflows Executions services on one
// loopback gRPC server, Pub/Sub (the client library's pstest server or
// Google's emulator) with the Eventarc-style push bridge, and one loopback
// HTTP server for workflow callbacks and the local token service's keys.
//
// Production code reaches every piece through the real Google client
// libraries; only the servers are local. All durable state lives under one
// data directory:
//
//	DataDir/oidc-key.pem   the local token service's signing key
//	DataDir/iam/           one policy file per project, folder, organization
//	DataDir/tasks/         queues, tasks and recently used task names
//	DataDir/workflows/     deployed definitions and execution journals
//
// Pub/Sub keeps nothing across a restart (see pushbridge): what must survive
// lives in the three stores above.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/local/gcp/localiam"
	"github.com/jitpipeline/jit/internal/local/gcp/localoidc"
	"github.com/jitpipeline/jit/internal/local/gcp/localtasks"
	"github.com/jitpipeline/jit/internal/local/gcp/loopback"
	"github.com/jitpipeline/jit/internal/local/gcp/pushbridge"
	"github.com/jitpipeline/jit/internal/local/gcp/wfrunner"
)

// JWKSPath is where the HTTP server publishes the local token service's
// public keys, the local twin of https://www.googleapis.com/oauth2/v3/certs.
const JWKSPath = "/oauth2/v3/certs"

// Config configures the embedded Google Cloud.
type Config struct {
	// DataDir holds all durable state. Required.
	DataDir string
	// Project and Location are the project and region the pipeline's own
	// resources (queues, workflows, topics) live in.
	Project  string
	Location string
	// GRPCAddr and HTTPAddr are loopback listen addresses; port 0 picks a
	// free port. Fix the HTTP port when callback URLs handed out before a
	// restart must still reach this process after it.
	GRPCAddr string
	HTTPAddr string
	// PubSubEmulatorHost, if set, uses Google's Pub/Sub emulator there
	// instead of starting pstest in this process.
	PubSubEmulatorHost string
	// WorkflowServiceAccount is the identity workflow HTTP calls carry in
	// their OIDC tokens.
	WorkflowServiceAccount string
	// WorkflowsDir, if set, is scanned for *.yaml definitions, each deployed
	// under its base name (grant-lifecycle.yaml → grant-lifecycle).
	WorkflowsDir string
	// WorkflowEnv are the user variables sys.get_env returns.
	WorkflowEnv map[string]string
	// Queues are the Cloud Tasks queue IDs to create if missing.
	Queues []string
	// Seed adds the projects, folders and organizations that exist in this
	// world (idempotent: it runs on every start).
	Seed func(*localiam.Server) error
	// GroupMembers lists a group's direct members ("user:…", "group:…") so
	// the local IAM can decide group bindings; nil means groups never match.
	GroupMembers func(ctx context.Context, group string) ([]string, error)
	// Routes are the push subscriptions to deliver (Eventarc triggers). An
	// Endpoint that is a path ("/functions/grant") is on this cloud's own
	// HTTP server, whose address is known only once it listens.
	Routes []pushbridge.Route
	// AuthorizeCallback vets workflow callback requests (see wfrunner).
	AuthorizeCallback func(*http.Request) error
	// Handler, if set, serves every HTTP path not taken by callbacks or the
	// key set: this is where the pipeline's functions are mounted.
	Handler http.Handler
	// Clock is the one time of the whole cloud: IAM condition evaluation
	// (request.time), Cloud Tasks schedule times and dispatch, and workflow
	// sys.now, sleeps, await timeouts and retries. A clock.Scaled lets a test
	// run a grant lifecycle faster than real time; the pipeline's own code
	// should read the same clock (Cloud.Clock). Default clock.Real().
	Clock  clock.Clock
	Logger *slog.Logger
}

// Validate reports every problem with the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("DataDir is required"))
	}
	if c.Project == "" {
		errs = append(errs, errors.New("Project is required"))
	}
	if c.Location == "" {
		errs = append(errs, errors.New("Location is required"))
	}
	if c.WorkflowServiceAccount == "" {
		errs = append(errs, errors.New("WorkflowServiceAccount is required"))
	}
	for _, a := range []struct{ name, addr string }{{"GRPCAddr", c.GRPCAddr}, {"HTTPAddr", c.HTTPAddr}} {
		if err := checkLoopback(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.name, err))
		}
	}
	return errors.Join(errs...)
}

// checkLoopback refuses any listen address that is not on 127.0.0.0/8 or
// ::1: the embedded cloud has no authentication of its own.
func checkLoopback(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("bad address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address", addr)
	}
	return nil
}

// Cloud is a running embedded Google Cloud.
type Cloud struct {
	cfg Config

	// GRPCAddr serves Resource Manager IAM, Cloud Tasks and Workflows
	// Executions; HTTPURL serves workflow callbacks and the key set.
	GRPCAddr string
	HTTPURL  string
	// Clock is the clock every service runs on (Config.Clock or the real one).
	Clock clock.Clock

	Signer    *localoidc.Signer
	IAM       *localiam.Server
	Tasks     *localtasks.Server
	Workflows *wfrunner.Runner
	PubSub    *pushbridge.Server
	Bridge    *pushbridge.Bridge // nil without routes

	grpc       *loopback.GRPCServer
	http       *http.Server
	pubsub     *pubsub.Client
	closeFuncs []func() error
}

// Start builds and starts everything. On error, whatever was started is
// stopped again.
func Start(ctx context.Context, cfg Config) (_ *Cloud, retErr error) {
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = "127.0.0.1:0"
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid embedded cloud config: %w", err)
	}
	c := &Cloud{cfg: cfg, Clock: cfg.Clock}
	defer func() {
		if retErr != nil {
			c.Close()
		}
	}()
	log := cfg.Logger

	signer, err := localoidc.Open(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("failed to open token signer: %w", err)
	}
	c.Signer = signer

	c.IAM, err = localiam.New(localiam.Config{
		Dir:     filepath.Join(cfg.DataDir, "iam"),
		Now:     cfg.Clock.Now,
		Members: cfg.GroupMembers,
		Logger:  log.With("component", "iam"),
	})
	if err != nil {
		return nil, fmt.Errorf("failed to start IAM: %w", err)
	}
	c.closeFuncs = append(c.closeFuncs, c.IAM.Close)
	if cfg.Seed != nil {
		if err := cfg.Seed(c.IAM); err != nil {
			return nil, fmt.Errorf("failed to seed resources: %w", err)
		}
	}

	c.Tasks, err = localtasks.New(localtasks.Config{
		Dir:    filepath.Join(cfg.DataDir, "tasks"),
		Signer: signer,
		Clock:  cfg.Clock,
		Logger: log.With("component", "cloudtasks"),
	})
	if err != nil {
		return nil, fmt.Errorf("failed to start Cloud Tasks: %w", err)
	}
	c.closeFuncs = append(c.closeFuncs, func() error { c.Tasks.Close(); return nil })
	for _, q := range cfg.Queues {
		name := fmt.Sprintf("projects/%s/locations/%s/queues/%s", cfg.Project, cfg.Location, q)
		if _, err := c.Tasks.EnsureQueue(name, nil); err != nil {
			return nil, fmt.Errorf("failed to create queue %s: %w", name, err)
		}
	}

	c.PubSub, err = pushbridge.Start(cfg.PubSubEmulatorHost)
	if err != nil {
		return nil, fmt.Errorf("failed to start Pub/Sub: %w", err)
	}
	c.closeFuncs = append(c.closeFuncs, c.PubSub.Close)

	// Both listeners open before the services are built: the runner's
	// connectors need the gRPC address, its callback URLs the HTTP one.
	grpcLis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %s: %w", cfg.GRPCAddr, err)
	}
	httpLis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		grpcLis.Close()
		return nil, fmt.Errorf("failed to listen on %s: %w", cfg.HTTPAddr, err)
	}
	c.GRPCAddr = grpcLis.Addr().String()
	c.HTTPURL = "http://" + httpLis.Addr().String()

	c.Workflows, err = wfrunner.New(wfrunner.Config{
		Project:           cfg.Project,
		Location:          cfg.Location,
		Dir:               filepath.Join(cfg.DataDir, "workflows"),
		CallbackBaseURL:   c.HTTPURL,
		AuthorizeCallback: cfg.AuthorizeCallback,
		Signer:            signer,
		ServiceAccount:    cfg.WorkflowServiceAccount,
		PubSubOptions:     c.PubSub.ClientOptions(),
		TasksOptions:      loopback.ClientOptions(c.GRPCAddr),
		Env:               cfg.WorkflowEnv,
		Clock:             cfg.Clock,
		Logger:            log.With("component", "workflows"),
	})
	if err != nil {
		grpcLis.Close()
		httpLis.Close()
		return nil, fmt.Errorf("failed to start Workflows: %w", err)
	}
	c.closeFuncs = append(c.closeFuncs, c.Workflows.Close)
	if err := c.deployWorkflows(); err != nil {
		grpcLis.Close()
		httpLis.Close()
		return nil, err
	}

	c.grpc = loopback.ServeGRPCListener(grpcLis, func(s *grpc.Server) {
		c.IAM.Register(s)
		c.Tasks.Register(s)
		c.Workflows.Register(s)
	})
	c.closeFuncs = append(c.closeFuncs, func() error { c.grpc.Stop(); return nil })

	mux := http.NewServeMux()
	mux.Handle("/v1/projects/{project}/locations/{location}/workflows/{workflow}/executions/{execution}/callbacks/{callback}", c.Workflows.CallbackHandler())
	mux.Handle("GET "+JWKSPath, signer)
	if cfg.Handler != nil {
		mux.Handle("/", cfg.Handler)
	}
	c.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go c.http.Serve(httpLis) //nolint:errcheck // returns http.ErrServerClosed on Close
	c.closeFuncs = append(c.closeFuncs, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return c.http.Shutdown(ctx)
	})

	c.Tasks.Start(ctx)
	if err := c.Workflows.Start(ctx); err != nil {
		return nil, fmt.Errorf("failed to resume workflow executions: %w", err)
	}

	if len(cfg.Routes) > 0 {
		c.pubsub, err = c.PubSub.NewClient(ctx, cfg.Project)
		if err != nil {
			return nil, err
		}
		c.closeFuncs = append(c.closeFuncs, c.pubsub.Close)
		c.Bridge, err = pushbridge.New(pushbridge.Config{
			Client: c.pubsub,
			Signer: signer,
			Logger: log.With("component", "pushbridge"),
			Routes: c.resolveRoutes(cfg.Routes),
		})
		if err != nil {
			return nil, fmt.Errorf("failed to configure push bridge: %w", err)
		}
		if err := c.Bridge.Start(ctx); err != nil {
			return nil, fmt.Errorf("failed to start push bridge: %w", err)
		}
		c.closeFuncs = append(c.closeFuncs, c.Bridge.Close)
	}

	log.Info("embedded Google Cloud started",
		"grpc_addr", c.GRPCAddr, "http_url", c.HTTPURL, "pubsub_addr", c.PubSub.Addr,
		"data_dir", cfg.DataDir, "project", cfg.Project, "location", cfg.Location)
	return c, nil
}

// resolveRoutes puts relative endpoints on this cloud's HTTP server.
func (c *Cloud) resolveRoutes(routes []pushbridge.Route) []pushbridge.Route {
	out := make([]pushbridge.Route, len(routes))
	for i, r := range routes {
		if strings.HasPrefix(r.Endpoint, "/") {
			r.Endpoint = c.HTTPURL + r.Endpoint
		}
		out[i] = r
	}
	return out
}

func (c *Cloud) deployWorkflows() error {
	if c.cfg.WorkflowsDir == "" {
		return nil
	}
	paths, err := filepath.Glob(filepath.Join(c.cfg.WorkflowsDir, "*.yaml"))
	if err != nil {
		return fmt.Errorf("failed to list workflows: %w", err)
	}
	sort.Strings(paths)
	var errs []error
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("failed to read workflow: %w", err))
			continue
		}
		name := strings.TrimSuffix(filepath.Base(p), ".yaml")
		if err := c.Workflows.Deploy(name, src); err != nil {
			errs = append(errs, fmt.Errorf("failed to deploy %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// ClientOptions aim the IAM, Cloud Tasks and Workflows Executions client
// libraries at this cloud.
func (c *Cloud) ClientOptions() []option.ClientOption { return loopback.ClientOptions(c.GRPCAddr) }

// Close stops everything, newest first. Durable state stays on disk.
func (c *Cloud) Close() error {
	var errs []error
	for i := len(c.closeFuncs) - 1; i >= 0; i-- {
		if err := c.closeFuncs[i](); err != nil {
			errs = append(errs, err)
		}
	}
	c.closeFuncs = nil
	return errors.Join(errs...)
}
