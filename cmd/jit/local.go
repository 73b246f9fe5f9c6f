package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/jitpipeline/jit/internal/localgcp/embedded"
	"github.com/jitpipeline/jit/internal/logging"
	"github.com/jitpipeline/jit/internal/world"
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
	worldFile := fs.String("world", "", "world file: the organization, projects, users and groups (default: the embedded demo world)")
	level := fs.String("log-level", "info", "debug, info, warning or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	log := logging.New(os.Stderr, logging.ParseLevel(*level))
	w := world.Default()
	if *worldFile != "" {
		var err error
		if w, err = world.Load(*worldFile); err != nil {
			return err
		}
	}
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
		Seed:                   w.Seed,
		GroupMembers:           w.DirectMembers,
		Logger:                 log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, `
jit local: the embedded Google Cloud is running (local mode, loopback only).
  IAM, Cloud Tasks, Workflows Executions (gRPC): %s
  Pub/Sub (gRPC):                                %s   (PUBSUB_EMULATOR_HOST=%s)
  Workflow callbacks and token keys (HTTP):      %s
  World:                                         %s (%d projects, %d users, %d groups)
  State:                                         %s
Press Ctrl-C to stop; state survives a restart.
`, cloud.GRPCAddr, cloud.PubSub.Addr, cloud.PubSub.Addr, cloud.HTTPURL,
		w.Organization.Domain, len(w.Projects), len(w.Users), len(w.Groups), *dataDir)
	<-ctx.Done()
	log.Info("shutting down")
	return cloud.Close()
}
