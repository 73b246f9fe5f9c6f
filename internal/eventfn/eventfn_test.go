package eventfn_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/eventfn"
	"github.com/jitpipeline/jit/internal/events"
	"github.com/jitpipeline/jit/internal/events/pubsubevent"
	"github.com/jitpipeline/jit/internal/grant"
)

var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

// delivery is e as Eventarc delivers it from a Pub/Sub topic.
func delivery(t *testing.T, e event.Event) event.Event {
	t.Helper()
	m, err := events.Message(e)
	if err != nil {
		t.Fatal(err)
	}
	d := event.New()
	d.SetID("17")
	d.SetType(pubsubevent.EventType)
	d.SetSource(pubsubevent.Source("jit-events"))
	d.SetTime(t0)
	if err := d.SetData(event.ApplicationJSON, pubsubevent.MessagePublishedData{
		Subscription: "projects/p/subscriptions/s",
		Message:      pubsubevent.Message{Data: m.Data, Attributes: m.Attributes, MessageID: "17", PublishTime: t0},
	}); err != nil {
		t.Fatal(err)
	}
	return d
}

func requested(t *testing.T, id string) event.Event {
	t.Helper()
	deadline := t0.Add(time.Hour)
	e, err := events.New(events.TypeRequested, id, t0, events.Data{
		GrantID: "g-abcdefghijklmnopqrst", Entitlement: "demo.p.admin", Requester: "bob@example.com",
		State: grant.ApprovalAwaited, Justification: "INC-1", RequestedDuration: "PT1H",
		Privileges:       []grant.Privilege{{Resource: "projects/demo-project", Role: "roles/viewer"}},
		ApprovalRequired: true, RequiredApprovals: 1, Approvers: []string{"user:carol@example.com"},
		ApprovalDeadline: &deadline, Actor: "bob@example.com",
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestNewFor(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	var got []eventfn.Meta
	fn := eventfn.NewFor([]string{events.TypeRequested, events.TypeDenied}, log, func(_ context.Context, m eventfn.Meta, d *events.Data) error {
		if d.GrantID != "g-abcdefghijklmnopqrst" {
			t.Errorf("data of %s: grant %q", m.ID, d.GrantID)
		}
		got = append(got, m)
		if m.ID == "fail-1" {
			return errors.New("try again")
		}
		return nil
	})
	if err := fn(t.Context(), delivery(t, requested(t, "g-abcdefghijklmnopqrst-1"))); err != nil {
		t.Fatalf("handled event: %v", err)
	}
	if err := fn(t.Context(), delivery(t, requested(t, "fail-1"))); err == nil {
		t.Error("a handler's error was not returned, so the delivery would not be retried")
	}
	poison := event.New()
	poison.SetID("p")
	poison.SetType("something.else")
	poison.SetSource("//x")
	if err := fn(t.Context(), poison); err != nil {
		t.Errorf("an invalid delivery is acknowledged, not retried: %v", err)
	}
	want := []eventfn.Meta{{ID: "g-abcdefghijklmnopqrst-1", Type: events.TypeRequested}, {ID: "fail-1", Type: events.TypeRequested}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("handled (-want +got):\n%s", diff)
	}

	// Another type is acknowledged without calling the handler.
	got = nil
	only := eventfn.New(events.TypeDenied, log, func(context.Context, *events.Data) error {
		t.Error("handler called for another type")
		return nil
	})
	if err := only(t.Context(), delivery(t, requested(t, "g-abcdefghijklmnopqrst-1"))); err != nil {
		t.Errorf("another type: %v", err)
	}
}
