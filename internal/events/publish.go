package events

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// Pub/Sub attribute names of the CloudEvents Pub/Sub protocol binding,
// binary content mode (github.com/cloudevents/spec pubsub-protocol-binding.md
// §3.1): every context attribute is "ce-" + its name, except datacontenttype,
// which is the Content-Type attribute (spelled as the spec and the
// CloudEvents Go SDK spell it; receivers match names case-insensitively).
const (
	AttrPrefix      = "ce-"
	AttrContentType = "Content-Type"
)

// Publisher puts pipeline events on the events topic as binary-mode
// CloudEvents, which is what Eventarc triggers and other subscribers read.
type Publisher struct {
	p *pubsub.Publisher
}

// NewPublisher publishes to a topic (its ID or full name) through the real
// Pub/Sub client's publisher, client.Publisher(topic). The client stays the
// caller's; Stop the Publisher before closing it.
//
// Every Publish waits for the server's answer before the event counts as
// sent, so the client's default bundling (hold a message up to 10 ms for
// up to 99 more) only adds latency: a function publishes one or two events
// per invocation. CountThreshold 1 sends each message at once; concurrent
// publishes still go out in parallel (NumGoroutines), so throughput does
// not suffer (docs/performance.md).
func NewPublisher(c *pubsub.Client, topic string) *Publisher {
	p := c.Publisher(topic)
	p.PublishSettings.CountThreshold = 1
	p.PublishSettings.DelayThreshold = time.Millisecond // unused at count 1; kept short should a batch ever form
	return &Publisher{p: p}
}

// Stop sends what is still batched and releases the publisher's
// goroutines; Publish fails afterwards.
func (p *Publisher) Stop() { p.p.Stop() }

// Publish checks e as New does and publishes it, returning the Pub/Sub
// message ID once the server has it. An event that fails the check is
// never sent; its error wraps ErrInvalid.
func (p *Publisher) Publish(ctx context.Context, e event.Event) (string, error) {
	if _, err := check(e); err != nil {
		return "", fmt.Errorf("failed to publish event %q: %w", e.ID(), err)
	}
	m, err := Message(e)
	if err != nil {
		return "", fmt.Errorf("failed to publish event %q: %w", e.ID(), err)
	}
	id, err := p.p.Publish(ctx, m).Get(ctx)
	if err != nil {
		return "", fmt.Errorf("failed to publish event %q: %w", e.ID(), err)
	}
	return id, nil
}

// Message maps an event to a Pub/Sub message in binary content mode: the
// data as is, the context attributes and extensions as ce-* attributes in
// their canonical string form (time in RFC 3339, UTC).
func Message(e event.Event) (*pubsub.Message, error) {
	if e.SpecVersion() != event.CloudEventsVersionV1 {
		return nil, fmt.Errorf("%w: specversion %q, want %q", ErrInvalid, e.SpecVersion(), event.CloudEventsVersionV1)
	}
	a := map[string]string{
		AttrPrefix + "specversion": e.SpecVersion(),
		AttrPrefix + "type":        e.Type(),
		AttrPrefix + "source":      e.Source(),
		AttrPrefix + "id":          e.ID(),
	}
	if t := e.Time(); !t.IsZero() {
		a[AttrPrefix+"time"] = t.UTC().Format(time.RFC3339Nano)
	}
	if s := e.Subject(); s != "" {
		a[AttrPrefix+"subject"] = s
	}
	if s := e.DataSchema(); s != "" {
		a[AttrPrefix+"dataschema"] = s
	}
	if ct := e.DataContentType(); ct != "" {
		a[AttrContentType] = ct
	}
	for name, v := range e.Extensions() {
		s, err := types.Format(v)
		if err != nil {
			return nil, fmt.Errorf("%w: extension %q: %w", ErrInvalid, name, err)
		}
		a[AttrPrefix+name] = s
	}
	if len(e.Data()) == 0 {
		return nil, fmt.Errorf("%w: event has no data", ErrInvalid)
	}
	return &pubsub.Message{Data: e.Data(), Attributes: a}, nil
}
