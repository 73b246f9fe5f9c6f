// Package grantfn is the grant function: on activation.requested it writes
// the time-bound IAM binding, schedules the named revocation task and
// resumes the workflow. With the revoke function, the only identity that
// may change IAM policies.
package grantfn

import (
	"context"
	"log/slog"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/jitpipeline/jit/internal/eventfn"
	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/lifecycle"
)

// Events handles activation.requested.
func Events(svc *lifecycle.GrantService, log *slog.Logger) func(context.Context, cloudevents.Event) error {
	return eventfn.New(events.TypeActivationRequested, log, svc.OnActivationRequested)
}
