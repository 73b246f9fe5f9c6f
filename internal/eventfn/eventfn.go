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
	"slices"
	"strings"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/jitpipeline/jit/internal/events"
)

// Handler is what a function does with one event's data.
type Handler func(ctx context.Context, d *events.Data) error

// New returns the CloudEvent function for events of the given type.
func New(eventType string, log *slog.Logger, h Handler) func(context.Context, cloudevents.Event) error {
	return NewFor([]string{eventType}, log, func(ctx context.Context, _ Meta, d *events.Data) error { return h(ctx, d) })
}

// Meta is what a handler of several event types learns of the event beyond
// its data.
type Meta struct {
	ID, Type string
}

// TypedHandler handles events of several types.
type TypedHandler func(ctx context.Context, m Meta, d *events.Data) error

// NewFor returns the CloudEvent function for events of any of the given
// types; events of other types are acknowledged and ignored.
func NewFor(eventTypes []string, log *slog.Logger, h TypedHandler) func(context.Context, cloudevents.Event) error {
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
		if !slices.Contains(eventTypes, inner.Type()) {
			log.WarnContext(ctx, "ignored event of another type", "event_id", inner.ID(), "event_type", inner.Type(), "want", strings.Join(eventTypes, ","))
			return nil
		}
		if err := h(ctx, Meta{ID: inner.ID(), Type: inner.Type()}, d); err != nil {
			log.WarnContext(ctx, "event handling failed; it will be redelivered", "event_id", inner.ID(), "grant_id", d.GrantID, "error", err)
			return err
		}
		return nil
	}
}
