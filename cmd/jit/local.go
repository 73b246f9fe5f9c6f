package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/jitpipeline/jit/internal/localgcp/embedded"
	"github.com/jitpipeline/jit/internal/localgcp/localiam"
	"github.com/jitpipeline/jit/internal/logging"
)

// The demo world until a world file can be passed in: one organization with
// one project, so the IAM API has something to answer for.
const (
	demoOrganization  = "100000000001"
	demoProject       = "demo-project"
	demoProjectNumber = 100000000002
)

func runLocal(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	dataDir := fs.String("data-dir", ".jit-data", "directory for all durable state")
	grpcAddr := fs.String("grpc-addr", "127.0.0.1:8090", "loopback address of the IAM, Cloud Tasks and Workflows Executions gRPC APIs")
	httpAddr := fs.String("http-addr", "127.0.0.1:8080", "loopback address of the HTTP server (workflow callbacks, token keys)")
	project := fs.String("project", "jit-local", "project of the pipeline's own resources")
	location := fs.String("location", "us-central1", "region of the pipeline's own resources")
	workflowsDir := fs.String("workflows-dir", "workflows", "directory of workflow definitions to deploy (*.yaml)")
	emulator := fs.String("pubsub-emulator-host", os.Getenv("PUBSUB_EMULATOR_HOST"), "use Google's Pub/Sub emulator at host:port instead of the in-process pstest server")
	level := fs.String("log-level", "info", "debug, info, warning or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	log := logging.New(os.Stderr, logging.ParseLevel(*level))
	if _, err := os.Stat(*workflowsDir); errors.Is(err, os.ErrNotExist) {
		*workflowsDir = ""
	}

	cloud, err := embedded.Start(ctx, embedded.Config{
		DataDir:                *dataDir,
		Project:                *project,
		Location:               *location,
		GRPCAddr:               *grpcAddr,
		HTTPAddr:               *httpAddr,
		PubSubEmulatorHost:     *emulator,
		WorkflowServiceAccount: "jit-lifecycle@" + *project + ".iam.gserviceaccount.com",
		WorkflowsDir:           *workflowsDir,
		Queues:                 []string{"revocations"},
		Seed: func(s *localiam.Server) error {
			if err := s.AddOrganization(demoOrganization); err != nil {
				return err
			}
			return s.AddProject(demoProject, demoProjectNumber, "organizations/"+demoOrganization)
		},
		Logger: log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, `
jit local: the embedded Google Cloud is running (local mode, loopback only).
  IAM, Cloud Tasks, Workflows Executions (gRPC): %s
  Pub/Sub (gRPC):                                %s   (PUBSUB_EMULATOR_HOST=%s)
  Workflow callbacks and token keys (HTTP):      %s
  State:                                         %s
Press Ctrl-C to stop; state survives a restart.
`, cloud.GRPCAddr, cloud.PubSub.Addr, cloud.PubSub.Addr, cloud.HTTPURL, *dataDir)
	<-ctx.Done()
	log.Info("shutting down")
	return cloud.Close()
}
