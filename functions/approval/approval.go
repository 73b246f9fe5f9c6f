// Package approvalfn is the approval function: it takes approval.requested
// from the lifecycle workflow (remembers where to resume it, notifies the
// approvers) and the approvers' decisions over HTTP (re-checked against
// the policy in force), and resumes the workflow.
package approvalfn

import (
	"context"
	"log/slog"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/jitpipeline/jit/internal/api"
	"github.com/jitpipeline/jit/internal/eventfn"
	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/lifecycle"
)

// HTTP serves POST /v1/grants/{id}:approve and :deny.
func HTTP(svc *lifecycle.ApprovalService, auth api.Authenticator, log *slog.Logger) *api.Handler {
	return api.NewApproval(svc, auth, log)
}

// Events handles approval.requested.
func Events(svc *lifecycle.ApprovalService, log *slog.Logger) func(context.Context, cloudevents.Event) error {
	return eventfn.New(events.TypeApprovalRequested, log, svc.OnApprovalRequested)
}
