// Package approvalfn is the approval function: it takes approval.requested
// from the lifecycle workflow (remembers where to resume it) and the
// approvers' decisions — over the API, or from the approval page an email
// link opens — re-checked against the policy in force, and resumes the
// workflow. On every transition of a grant it tells the approvers and the
// requester by mail.
package approvalfn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/jitpipeline/jit/internal/api"
	"github.com/jitpipeline/jit/internal/eventfn"
	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/lifecycle"
	"github.com/jitpipeline/jit/internal/notify"
	"github.com/jitpipeline/jit/internal/pages"
)

// HTTP serves POST /v1/grants/{id}:approve and :deny.
func HTTP(svc *lifecycle.ApprovalService, auth api.Authenticator, log *slog.Logger) *api.Handler {
	return api.NewApproval(svc, auth, log)
}

// Grants reads a grant as the ledger holds it (grant.Ledger).
type Grants interface {
	Get(ctx context.Context, id string) (*grant.Grant, error)
}

// Notify handles the transitions on the events topic: it mails what the
// transition means to whom it concerns, once, however often the event is
// delivered. A grant the ledger does not have is acknowledged (nothing to
// tell); a mail that failed for now is retried by redelivery.
func Notify(n *notify.Notifier, grants Grants, log *slog.Logger) func(context.Context, cloudevents.Event) error {
	return eventfn.NewFor(events.Transitions, log, func(ctx context.Context, m eventfn.Meta, d *events.Data) error {
		g, err := grants.Get(ctx, d.GrantID)
		if errors.Is(err, grant.ErrNotFound) {
			log.WarnContext(ctx, "notification for an unknown grant ignored", "grant_id", d.GrantID, "event_id", m.ID)
			return nil
		}
		if err != nil {
			return fmt.Errorf("failed to read grant %s: %w", d.GrantID, err)
		}
		return n.Notify(ctx, m.Type, g)
	})
}

// Pages serves the approval page an email link opens.
func Pages(cfg pages.Config) (http.Handler, error) { return pages.New(cfg) }

// Events handles approval.requested.
func Events(svc *lifecycle.ApprovalService, log *slog.Logger) func(context.Context, cloudevents.Event) error {
	return eventfn.New(events.TypeApprovalRequested, log, svc.OnApprovalRequested)
}
