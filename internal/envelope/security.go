package envelope

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"time"

	"github.com/jitpipeline/jit/internal/logging"
)

// SecurityEvent logs a refused envelope as a security event and reports
// whether err was a refusal, so a subscriber can write
//
//	req, err := v.Verify(ctx, msg.Data, msg.Attributes)
//	if envelope.SecurityEvent(ctx, log, err, msg.ID, msg.Attributes) {
//		return nil // refused for good: acknowledge, do not retry
//	}
//	if err != nil {
//		return err // transient: let Pub/Sub redeliver
//	}
//
// The line has severity WARNING and Cloud Logging labels (docs/google-cloud.md §10)
// event/type "security", event/id "envelope.refused", reason, issuer (as
// claimed, when it could be read) and message_id, named like the audit
// lines. It never logs the token or the body; of the attributes it logs
// only the names. The source location is SecurityEvent's caller.
func SecurityEvent(ctx context.Context, log *slog.Logger, err error, messageID string, attrs map[string]string) bool {
	var r *Refused
	if !errors.As(err, &r) {
		return false
	}
	if log == nil {
		log = slog.Default()
	}
	if !log.Enabled(ctx, slog.LevelWarn) {
		return true
	}
	labels := []any{
		slog.String("event/type", "security"),
		slog.String("event/id", "envelope.refused"),
		slog.String("reason", string(r.Reason)),
	}
	if r.Issuer != "" {
		labels = append(labels, slog.String("issuer", r.Issuer))
	}
	if messageID != "" {
		labels = append(labels, slog.String("message_id", messageID))
	}
	names := make([]string, 0, len(attrs))
	for name := range attrs {
		names = append(names, name)
	}
	slices.Sort(names)

	msg := fmt.Sprintf("refused a request envelope (%s)", r.Reason)
	if r.Issuer != "" {
		msg += " claiming to be from " + r.Issuer
	}
	var pcs [1]uintptr
	runtime.Callers(2, pcs[:]) // skip Callers and SecurityEvent
	rec := slog.NewRecord(time.Now(), slog.LevelWarn, msg, pcs[0])
	rec.AddAttrs(
		slog.Group(logging.KeyLabels, labels...),
		slog.String("detail", r.Detail),
		slog.Any("attribute_names", names),
	)
	_ = log.Handler().Handle(ctx, rec) // a log line that cannot be written has nowhere to go
	return true
}
