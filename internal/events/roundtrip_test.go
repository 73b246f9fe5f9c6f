package events

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/cloudevents/sdk-go/v2/client"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/events/pubsubevent"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/local/gcp/pushbridge"
)

// deliveryTimeout only bounds a broken test; nothing asserts speed.
const deliveryTimeout = 30 * time.Second

// pubsubFake starts pstest (behind the real v2 client, docs/google-cloud.md §5 and
// §11) with the events topic.
func pubsubFake(t *testing.T) (*pushbridge.Server, *pubsub.Client) {
	t.Helper()
	srv, err := pushbridge.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c, err := srv.NewClient(t.Context(), "p")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := pushbridge.EnsureTopic(t.Context(), c, "events"); err != nil {
		t.Fatal(err)
	}
	return srv, c
}

func newPublisher(t *testing.T, c *pubsub.Client) *Publisher {
	t.Helper()
	p := NewPublisher(c, "events")
	t.Cleanup(p.Stop)
	return p
}

func revokeCommand(t *testing.T) event.Event {
	t.Helper()
	e, err := New(TypeRevokeRequested, testGrantID+"-withdraw", t0, Data{
		GrantID: testGrantID, Entitlement: "prod.payments.db-admin", Requester: "alice@example.com",
		State: grant.Withdrawing, CallbackURL: "https://workflowexecutions.googleapis.com/v1/x/callbacks/9",
		Reason: "withdraw",
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestRoundTripPull: Publisher → pstest → a pull subscriber → wrapped as
// Eventarc wraps it (docs/google-cloud.md §5) → Receive gives back the same event.
// The message on the server is checked too: binary content mode, ce-*
// attributes, JSON data (CloudEvents Pub/Sub binding §3.1).
func TestRoundTripPull(t *testing.T) {
	t.Parallel()
	srv, c := pubsubFake(t)
	if _, err := pushbridge.EnsureSubscription(t.Context(), c, &pubsubpb.Subscription{
		Name: "projects/p/subscriptions/pull", Topic: "projects/p/topics/events",
	}); err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, c)
	activated, err := New(TypeActivated, testGrantID+"-4", t0, activatedData())
	if err != nil {
		t.Fatal(err)
	}
	sent := map[string]event.Event{}
	for _, e := range []event.Event{activated, revokeCommand(t)} {
		id, err := p.Publish(t.Context(), e)
		if err != nil {
			t.Fatal(err)
		}
		sent[id] = e
		m := srv.Fake().Message(id)
		want := map[string]string{
			"ce-specversion": "1.0", "ce-type": e.Type(), "ce-source": "//jit.pipeline/grants", "ce-id": e.ID(),
			"ce-time": "2026-01-02T03:04:05.123456789Z", "ce-subject": testGrantID,
			"ce-dataschema": SchemaURL(e.Type()), "Content-Type": "application/json",
		}
		if diff := cmp.Diff(want, m.Attributes); diff != "" {
			t.Errorf("%s: attributes on the server (-want +got):\n%s", e.Type(), diff)
		}
		if string(m.Data) != string(e.Data()) {
			t.Errorf("%s: data on the server = %s, want %s", e.Type(), m.Data, e.Data())
		}
	}

	var mu sync.Mutex
	pulled := map[string]*pubsub.Message{}
	ctx, cancel := context.WithTimeout(t.Context(), deliveryTimeout)
	defer cancel()
	err = c.Subscriber("pull").Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		pulled[m.ID] = m
		if len(pulled) == len(sent) {
			cancel()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pulled) != len(sent) {
		t.Fatalf("pulled %d messages, want %d", len(pulled), len(sent))
	}
	for id, m := range pulled {
		got, d, err := Receive(wrap(t, pubsubevent.Message{
			Data: m.Data, Attributes: m.Attributes, MessageID: m.ID, PublishTime: m.PublishTime,
		}))
		if err != nil {
			t.Fatalf("message %s: %v", id, err)
		}
		want := sent[id]
		if diff := cmp.Diff(eventJSON(t, want), eventJSON(t, got)); diff != "" {
			t.Errorf("message %s (-sent +received):\n%s", id, diff)
		}
		var wantData Data
		if err := want.DataAs(&wantData); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&wantData, d); diff != "" {
			t.Errorf("message %s data (-sent +received):\n%s", id, diff)
		}
	}
}

// TestRoundTripPushBridge: the same through the local push bridge to an
// HTTP endpoint parsed by the CloudEvents SDK, as functions-framework-go
// does (docs/google-cloud.md §6: binary mode when ce-specversion is a header).
func TestRoundTripPushBridge(t *testing.T) {
	t.Parallel()
	_, c := pubsubFake(t)
	type result struct {
		e   event.Event
		d   *Data
		err error
	}
	got := make(chan result, 4)
	proto, err := cehttp.New()
	if err != nil {
		t.Fatal(err)
	}
	h, err := client.NewHTTPReceiveHandler(t.Context(), proto, func(_ context.Context, outer event.Event) error {
		e, d, err := Receive(outer)
		got <- result{e, d, err}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	b, err := pushbridge.New(pushbridge.Config{
		Client: c, Logger: slog.New(slog.DiscardHandler),
		Routes: []pushbridge.Route{{
			Topic: "events", Subscription: "eventarc-grant", Endpoint: ts.URL,
			MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, AckDeadline: 10 * time.Second,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })

	sent := revokeCommand(t)
	if _, err := newPublisher(t, c).Publish(t.Context(), sent); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if diff := cmp.Diff(eventJSON(t, sent), eventJSON(t, r.e)); diff != "" {
			t.Errorf("event (-sent +received):\n%s", diff)
		}
		if r.d.Reason != "withdraw" || r.d.CallbackURL == "" {
			t.Errorf("data = %+v", r.d)
		}
	case <-time.After(deliveryTimeout):
		t.Fatal("no delivery")
	}
}

// TestPublishRefuses: an event that breaks the contract never reaches
// Pub/Sub (validated when emitted, docs/architecture.md §2).
func TestPublishRefuses(t *testing.T) {
	t.Parallel()
	srv, c := pubsubFake(t)
	p := newPublisher(t, c)
	good, err := New(TypeActivated, testGrantID+"-4", t0, activatedData())
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]func(e *event.Event){
		"bad data":       func(e *event.Event) { e.DataEncoded = []byte(`{"grantId":"x"}`) },
		"foreign source": func(e *event.Event) { e.SetSource("//elsewhere") },
		"unknown type":   func(e *event.Event) { e.SetType("dev.jitpipeline.grant.extended.v1") },
		"no data":        func(e *event.Event) { e.DataEncoded = nil },
	}
	for name, change := range tests {
		e := good.Clone()
		change(&e)
		if _, err := p.Publish(t.Context(), e); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if n := len(srv.Fake().Messages()); n != 0 {
		t.Errorf("%d messages reached the server", n)
	}
	// The control: the unchanged event is published.
	if _, err := p.Publish(t.Context(), good); err != nil {
		t.Errorf("control: %v", err)
	}
}
