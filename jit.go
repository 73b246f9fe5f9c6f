// Package jit is the module root package, the one the Cloud Functions Go
// buildpack builds (docs/architecture.md §8): it registers every function by name with
// functions-framework. Each deployed function is this same source with its
// own entry point (and its own service account); the handlers are built
// lazily on the first invocation (internal/deploy), so init() only
// registers — and checks the served function's settings, which reads the
// environment and nothing else: a function missing one does not start.
package jit

import (
	"log/slog"
	"os"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/jitpipeline/jit/internal/deploy"
	"github.com/jitpipeline/jit/internal/logging"
)

func init() {
	functions.HTTP("intake", deploy.Intake())
	functions.CloudEvent("intakeRequests", deploy.IntakeRequests())
	functions.HTTP("approval", deploy.Approval())
	functions.CloudEvent("approvalEvents", deploy.ApprovalEvents())
	functions.CloudEvent("approvalNotify", deploy.ApprovalNotify())
	functions.CloudEvent("grant", deploy.Grant())
	functions.CloudEvent("revoke", deploy.Revoke())
	functions.HTTP("revokeTask", deploy.RevokeTask())
	functions.HTTP("sweep", deploy.Sweep())

	target := os.Getenv("FUNCTION_TARGET")
	if err := deploy.Check(target); err != nil {
		logging.New(os.Stderr, slog.LevelInfo).Error("the function cannot start", "function", target, "error", err.Error())
		os.Exit(1)
	}
}
