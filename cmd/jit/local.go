package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"

	"github.com/jitpipeline/jit/internal/auth"
	"github.com/jitpipeline/jit/internal/local/pipeline"
	"github.com/jitpipeline/jit/internal/local/world"
	"github.com/jitpipeline/jit/internal/logging"
	"github.com/jitpipeline/jit/internal/policy/classic"
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
	classicMode := fs.Bool("classic", os.Getenv("JIT_CLASSIC") != "false", "read JIT Access's eligible role bindings from the emulated IAM (env JIT_CLASSIC=false turns it off; RESOURCE_SCOPE and JIT Access's other options apply, docs/migrate-from-jit-access.md)")
	emulator := fs.String("pubsub-emulator-host", os.Getenv("PUBSUB_EMULATOR_HOST"), "use Google's Pub/Sub emulator at host:port instead of the in-process pstest server")
	level := fs.String("log-level", envOr("JIT_LOG_LEVEL", "info"), "debug, info, warning or error")
	authMode := fs.String("auth", envOr("JIT_AUTH", "local"), `"local" (the X-Debug-Principal header names the caller) or "iap" (production-auth mode: IAP assertions, verified against --iap-keys-file)`)
	iapAudience := fs.String("iap-audience", os.Getenv("JIT_IAP_AUDIENCE"), "IAP audience in iap mode: /projects/NUM/global/backendServices/ID or /projects/NUM/locations/REGION/services/NAME")
	iapKeys := fs.String("iap-keys-file", os.Getenv("JIT_IAP_KEYS_FILE"), "JWKS file of the keys IAP assertions are signed with, in iap mode (tests sign their own)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // -h printed the flags; asking for help is not a failure
		}
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
	cfg := pipeline.Config{
		DataDir: *dataDir, Addr: net.JoinHostPort("127.0.0.1", *port),
		PolicyFile: *policyFile, World: w, PubSubEmulatorHost: *emulator, Logger: log,
		// JIT Access's options, by its names (docs/migrate-from-jit-access.md).
		Classic: classic.FromLookup(os.Getenv), NoClassic: !*classicMode,
	}
	fmt.Fprintln(os.Stderr, startLine(*port, *dataDir))
	switch *authMode {
	case "local":
		log.Info("starting in local mode: loopback only, the X-Debug-Principal header names the caller", "mode", "local")
	case "iap":
		var auds []string
		if *iapAudience != "" {
			auds = []string{*iapAudience}
		}
		cfg.IAP = &auth.IAPConfig{Audiences: auds, KeysFile: *iapKeys}
		if err := cfg.IAP.Validate(); err != nil {
			return fmt.Errorf("refusing to start in production-auth mode: %w", err)
		}
		log.Info("starting in production-auth mode: IAP assertions required, the debug principal header is refused", "mode", "production-auth", "iap_audience", *iapAudience)
	default:
		return fmt.Errorf(`--auth must be "local" or "iap", got %q`, *authMode)
	}
	p, err := pipeline.Start(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	return p.Close()
}

// startLine is the one human line `jit local` prints before its JSON logs:
// where it listens and what to try first (the README's "Try it" has more).
func startLine(port, dataDir string) string {
	return fmt.Sprintf("jit local: http://127.0.0.1:%s (state in %s) — try: curl -s localhost:%s/v1/entitlements -H 'X-Debug-Principal: user:alice@example.com' (more in README.md, \"Try it\")", port, dataDir, port)
}
