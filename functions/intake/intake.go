// Package intakefn is the intake function: the HTTP API through which people
// and the CLI list entitlements, request them, follow and withdraw their
// grants. It authenticates the caller, evaluates the policy in force,
// persists the grant and emits grant.requested — nothing else (it has no
// right to change IAM policies).
package intakefn

import (
	"context"
	"errors"
	"log/slog"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/jitpipeline/jit/internal/api"
	"github.com/jitpipeline/jit/internal/envelope"
	"github.com/jitpipeline/jit/internal/events/pubsubevent"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/lifecycle"
)

// HTTP is the intake function's handler.
func HTTP(svc *lifecycle.IntakeService, auth api.Authenticator, log *slog.Logger) *api.Handler {
	return api.NewIntake(svc, auth, log)
}

// Requests handles the requests topic: other systems (incident tooling,
// ticketing, chat bots) publish a request with a signed envelope naming
// the user it is for. A message that fails verification, or that the
// policy refuses, is recorded as a security event and acknowledged — a
// retry cannot make it valid; a temporary failure is returned, so Pub/Sub
// delivers it again.
func Requests(svc *lifecycle.IntakeService, v *envelope.Verifier, log *slog.Logger) func(context.Context, cloudevents.Event) error {
	return func(ctx context.Context, e cloudevents.Event) error {
		msg, err := pubsubevent.FromEvent(e)
		if err != nil {
			log.ErrorContext(ctx, "refused a delivery that is not a Pub/Sub message", "event_id", e.ID(), "error", err)
			return nil
		}
		req, err := v.Verify(ctx, msg.Message.Data, msg.Message.Attributes)
		if envelope.SecurityEvent(ctx, log, err, msg.Message.MessageID, msg.Message.Attributes) {
			return nil
		}
		if err != nil {
			return err
		}
		g, err := svc.RequestOnBehalf(ctx, req.Issuer, lifecycle.Caller{Email: req.User}, lifecycle.RequestInput(req.Body), req.Key)
		if errors.Is(err, grant.ErrDuplicateRequest) {
			log.WarnContext(ctx, "refused a replayed request",
				"event/type", "security", "reason", envelope.ReasonReplayed, "issuer", req.Issuer, "user", req.User,
				"entitlement", req.Entitlement, "message_id", msg.Message.MessageID)
			return nil
		}
		var refused *lifecycle.Error
		if errors.As(err, &refused) {
			log.WarnContext(ctx, "request on behalf refused by the policy",
				"event/type", "security", "reason", refused.Code(), "issuer", req.Issuer, "user", req.User,
				"entitlement", req.Entitlement, "message_id", msg.Message.MessageID, "detail", refused.Message)
			return nil
		}
		if err != nil {
			return err
		}
		log.InfoContext(ctx, "request on behalf accepted", "grant_id", g.ID, "issuer", req.Issuer, "user", req.User)
		return nil
	}
}
