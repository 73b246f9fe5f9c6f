package events

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/jitpipeline/jit/internal/logging"
)

// Audit writes the one audit line of an event: severity NOTICE, a message
// a person can read, and Cloud Logging labels (docs/google-cloud.md §10) to filter on,
// named like JIT Access's (user, justification) and JIT Groups' (event/type
// "audit", event/id; docs/jit-access.md §1.10, §3.10). Callback URLs are
// capabilities and are never logged; policy inputs are not in events.
// d may be nil, in which case it is decoded from e. The source location
// of the line is Audit's caller.
func Audit(ctx context.Context, log *slog.Logger, e event.Event, d *Data) {
	if log == nil {
		log = slog.Default()
	}
	if !log.Enabled(ctx, logging.LevelNotice) {
		return
	}
	if d == nil {
		d = new(Data)
		if err := e.DataAs(d); err != nil {
			d = &Data{GrantID: e.Subject()}
		}
	}
	name := shortName(e.Type())
	labels := []any{
		slog.String("event/type", "audit"),
		slog.String("event/id", name),
		slog.String("event_type", e.Type()),
		slog.String("event_id", e.ID()),
		slog.String("grant_id", d.GrantID),
		slog.String("entitlement", d.Entitlement),
		slog.String("user", d.Requester),
		slog.String("state", string(d.State)),
	}
	add := func(key, value string) {
		if value != "" {
			labels = append(labels, slog.String(key, value))
		}
	}
	add("actor", d.Actor)
	add("justification", d.Justification)
	add("duration", d.RequestedDuration)
	add("approvers", strings.Join(d.Approvers, ","))
	add("start_time", timeLabel(d.StartTime))
	add("end_time", timeLabel(d.EndTime))
	add("reason", d.Reason)

	attrs := []slog.Attr{slog.Group(logging.KeyLabels, labels...)}
	if len(d.Privileges) > 0 {
		attrs = append(attrs, slog.Any("privileges", d.Privileges))
	}
	if d.Message != "" {
		attrs = append(attrs, slog.String("detail", d.Message))
	}
	msg := fmt.Sprintf("grant %s for %s by %s: %s (%s)",
		d.GrantID, d.Entitlement, d.Requester, d.State, strings.TrimPrefix(name, "grant."))
	var pcs [1]uintptr
	runtime.Callers(2, pcs[:]) // skip Callers and Audit
	r := slog.NewRecord(time.Now(), logging.LevelNotice, msg, pcs[0])
	r.AddAttrs(attrs...)
	_ = log.Handler().Handle(ctx, r) // a log line that cannot be written has nowhere to go
}

func timeLabel(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
