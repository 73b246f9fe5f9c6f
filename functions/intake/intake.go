// Package intake is the intake function: the HTTP API through which people
// and the CLI list entitlements, request them, follow and withdraw their
// grants. It authenticates the caller, evaluates the policy in force,
// persists the grant and emits grant.requested — nothing else (it has no
// right to change IAM policies).
package intake

import (
	"log/slog"
	"net/http"

	"github.com/jitpipeline/jit/internal/api"
	"github.com/jitpipeline/jit/internal/lifecycle"
)

// HTTP is the intake function's handler.
func HTTP(svc *lifecycle.Service, auth api.Authenticator, log *slog.Logger) http.Handler {
	return api.New(svc, auth, api.IntakeRoutes, log)
}
