// Package eventfn adapts a lifecycle operation to a CloudEvent function, the
// signature functions-framework-go serves: it unwraps the Pub/Sub delivery
// (in events.Receive, the one place that does), refuses poison messages
// without retrying them, and returns other errors so the delivery is
// retried.
package eventfn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/jitpipeline/jit/internal/events"
)

// Handler is what a function does with one event's data.
type Handler func(ctx context.Context, d *events.Data) error

// New returns the CloudEvent function for events of the given type.
func New(eventType string, log *slog.Logger, h Handler) func(context.Context, cloudevents.Event) error {
	return func(ctx context.Context, e cloudevents.Event) error {
		inner, d, err := events.Receive(e)
		if errors.Is(err, events.ErrInvalid) {
			// Retrying cannot fix it: acknowledge, and leave a trace.
			log.ErrorContext(ctx, "refused invalid event", "event_id", e.ID(), "error", err)
			return nil
		}
		if err != nil {
			return fmt.Errorf("failed to read event %s: %w", e.ID(), err)
		}
		if inner.Type() != eventType {
			log.WarnContext(ctx, "ignored event of another type", "event_id", inner.ID(), "event_type", inner.Type(), "want", eventType)
			return nil
		}
		if err := h(ctx, d); err != nil {
			log.WarnContext(ctx, "event handling failed; it will be redelivered", "event_id", inner.ID(), "grant_id", d.GrantID, "error", err)
			return err
		}
		return nil
	}
}
