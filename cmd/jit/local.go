package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"

	"github.com/jitpipeline/jit/internal/localpipeline"
	"github.com/jitpipeline/jit/internal/logging"
	"github.com/jitpipeline/jit/internal/world"
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// runLocal is `jit local`: the whole pipeline on loopback, in local mode.
func runLocal(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	port := fs.String("port", envOr("PORT", "8080"), "loopback port of the HTTP server (env PORT)")
	dataDir := fs.String("data-dir", envOr("JIT_DATA_DIR", ".jit"), "directory for all durable state (env JIT_DATA_DIR)")
	policyFile := fs.String("policy", os.Getenv("JIT_POLICY"), "policy document, reloaded when it changes (env JIT_POLICY; default: the demo policy)")
	worldFile := fs.String("world", os.Getenv("JIT_WORLD"), "world file: projects, users, groups and IAM bindings of the emulated organization (env JIT_WORLD; default: the demo world)")
	emulator := fs.String("pubsub-emulator-host", os.Getenv("PUBSUB_EMULATOR_HOST"), "use Google's Pub/Sub emulator at host:port instead of the in-process pstest server")
	level := fs.String("log-level", envOr("JIT_LOG_LEVEL", "info"), "debug, info, warning or error")
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
	log.Info("starting in local mode: loopback only, the X-Debug-Principal header names the caller", "mode", "local")
	p, err := localpipeline.Start(ctx, localpipeline.Config{
		DataDir: *dataDir, Addr: net.JoinHostPort("127.0.0.1", *port),
		PolicyFile: *policyFile, World: w, PubSubEmulatorHost: *emulator, Logger: log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, `
jit local is running at %[1]s (local mode, loopback only; state in %[2]s)

Try it:
  curl -s %[1]s/v1/entitlements -H 'X-Debug-Principal: user:alice@example.com'
  curl -s %[1]s/v1/grants -H 'X-Debug-Principal: user:alice@example.com' -H 'X-Requested-With: curl' -H 'Content-Type: application/json' -d '{"entitlement":"demo.demo-project.viewer","requestedDuration":"PT1M","justification":"trying jit"}'
  curl -s %[1]s/local/iam/projects/demo-project

Press Ctrl-C to stop; everything carries on after a restart.
`, p.URL, *dataDir)
	<-ctx.Done()
	log.Info("shutting down")
	return p.Close()
}
