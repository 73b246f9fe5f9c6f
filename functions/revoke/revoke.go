// Package revoke is the revoke function: it removes a grant's access on
// revoke.requested (from the workflow or a withdrawal) and on the
// revocation task Cloud Tasks delivers at the end time, reads the policy
// back and records the verified removal. All three paths are the same
// idempotent operation, so whichever comes first wins and the others find
// the work done.
package revoke

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/jitpipeline/jit/internal/auth"
	"github.com/jitpipeline/jit/internal/eventfn"
	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/lifecycle"
)

// Events handles revoke.requested.
func Events(svc *lifecycle.Service, log *slog.Logger) func(context.Context, cloudevents.Event) error {
	return eventfn.New(events.RevokeRequested, log, func(ctx context.Context, d *events.Data) error {
		_, err := svc.Revoke(ctx, d.GrantID, d.Reason, "workflow")
		if errors.Is(err, grant.ErrNotFound) {
			log.ErrorContext(ctx, "revoke requested for an unknown grant", "grant_id", d.GrantID)
			return nil
		}
		return err
	})
}

// Tasks handles the revocation task: POST {"grantId"} with an OIDC token
// of the allowed service account. The status code is the acknowledgement
// (gcp-facts §3): 2xx done, anything else retried with backoff.
func Tasks(svc *lifecycle.Service, check auth.Service, log *slog.Logger) http.Handler {
	return check.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		var body struct {
			GrantID string `json:"grantId"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil || !grant.ValidID(body.GrantID) {
			// A malformed task never gets better: acknowledge it.
			log.ErrorContext(r.Context(), "refused malformed revocation task", "task", r.Header.Get("X-CloudTasks-TaskName"))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if _, err := svc.Revoke(r.Context(), body.GrantID, lifecycle.ReasonEnd, "cloud-tasks"); err != nil {
			if errors.Is(err, grant.ErrNotFound) {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			log.WarnContext(r.Context(), "revocation task failed; Cloud Tasks retries it", "grant_id", body.GrantID, "error", err)
			http.Error(w, "revocation failed", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
}
