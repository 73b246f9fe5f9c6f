// Package revokefn is the revoke function: it removes a grant's access on
// revoke.requested (from the workflow or a withdrawal) and on the
// revocation task Cloud Tasks delivers at the end time, reads the policy
// back and records the verified removal; and it runs the sweep. All paths
// are the same idempotent operation, so whichever comes first wins and the
// others find the work done.
package revokefn

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/jitpipeline/jit/internal/auth"
	"github.com/jitpipeline/jit/internal/eventfn"
	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/lifecycle"
)

// Events handles revoke.requested.
func Events(svc *lifecycle.RevokeService, log *slog.Logger) func(context.Context, cloudevents.Event) error {
	return eventfn.New(events.TypeRevokeRequested, log, func(ctx context.Context, d *events.Data) error {
		_, err := svc.Revoke(ctx, d.GrantID, d.Reason, "workflow")
		if errors.Is(err, grant.ErrNotFound) {
			log.ErrorContext(ctx, "revoke requested for an unknown grant", "grant_id", d.GrantID)
			return nil
		}
		return err
	})
}

// Tasks handles the revocation task: POST {"grantId", "scheduleTime"}
// with an OIDC token of the allowed service account. The status code is
// the acknowledgement (docs/google-cloud.md §3): 2xx only when the grant can no
// longer hold access or the next task of the chain is scheduled; anything
// else is retried with backoff — a delivery before the end answers 503
// with Retry-After (the service says too early; the status is this
// adapter's).
func Tasks(svc *lifecycle.RevokeService, check auth.Service, log *slog.Logger) http.Handler {
	return check.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		var task lifecycle.RevocationTask
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&task); err != nil || !grant.ValidID(task.GrantID) {
			// A malformed task never gets better: acknowledge it.
			log.ErrorContext(r.Context(), "refused malformed revocation task", "task", r.Header.Get("X-CloudTasks-TaskName"))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		err := svc.OnRevocationTask(r.Context(), task)
		var early *lifecycle.TooEarlyError
		switch {
		case err == nil, errors.Is(err, grant.ErrNotFound):
			w.WriteHeader(http.StatusNoContent)
		case errors.As(err, &early):
			w.Header().Set("Retry-After", strconv.Itoa(int(early.RetryAfter.Seconds())+1))
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		default:
			log.WarnContext(r.Context(), "revocation task not done; Cloud Tasks retries it", "grant_id", task.GrantID, "error", err)
			http.Error(w, "revocation not done", http.StatusServiceUnavailable)
		}
	}))
}

// Sweep is the sweep's HTTP entry point, for Cloud Scheduler (POST, with
// an OIDC token of the scheduler's service account): it runs
// lifecycle.RevokeService.Sweep and answers 500 when some of it failed, so the
// job shows the failure; the next run retries.
func Sweep(svc *lifecycle.RevokeService, check auth.Service, log *slog.Logger) http.Handler {
	return check.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		if err := svc.Sweep(r.Context()); err != nil {
			log.WarnContext(r.Context(), "sweep incomplete", "error", err)
			http.Error(w, "sweep incomplete; see the logs", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
}
