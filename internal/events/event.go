package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/isoduration"
)

// New builds the CloudEvent of a pipeline event: its data is validated
// against the type's schema first, so nothing that breaks the published
// contract ever leaves the pipeline. The subject is the grant ID (so
// subscribers can filter without reading the data), the time is in UTC and
// the dataschema names the schema. Errors wrap ErrInvalid.
func New(eventType, id string, t time.Time, d Data) (event.Event, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return event.Event{}, fmt.Errorf("failed to encode %s data: %w", eventType, err)
	}
	if err := Validate(eventType, b); err != nil {
		return event.Event{}, fmt.Errorf("failed to build event %q: %w", id, err)
	}
	if t.IsZero() {
		return event.Event{}, fmt.Errorf("failed to build event %q: %w: time is zero", id, ErrInvalid)
	}
	e := event.New(event.CloudEventsVersionV1)
	e.SetID(id)
	e.SetSource(Source)
	e.SetType(eventType)
	e.SetSubject(d.GrantID)
	e.SetTime(t.UTC())
	e.SetDataSchema(SchemaURL(eventType))
	e.SetDataContentType(event.ApplicationJSON)
	// The JSON as is: SetData would mark a []byte as base64.
	e.DataEncoded = b
	if err := e.Validate(); err != nil {
		return event.Event{}, fmt.Errorf("failed to build event %q: %w: %w", id, ErrInvalid, err)
	}
	return e, nil
}

// FromGrantEntry builds the event of a timeline entry, for the outbox: the
// ID, time, type, state, actor and message are the entry's, the rest is the
// grant's current summary. Capabilities (callback URLs) and the policy
// inputs never go into events.
func FromGrantEntry(g *grant.Grant, e grant.Entry) (event.Event, error) {
	if g == nil {
		return event.Event{}, errors.New("failed to build event: no grant")
	}
	d := Data{
		GrantID:           g.ID,
		Entitlement:       g.Entitlement,
		Requester:         g.Requester,
		State:             e.State,
		Justification:     g.Justification,
		Privileges:        slices.Clone(g.Privileges),
		ApprovalRequired:  g.ApprovalRequired,
		RequiredApprovals: g.RequiredApprovals,
		Approvers:         slices.Clone(g.Approvers),
		ApprovalDeadline:  utc(g.ApprovalDeadline),
		StartTime:         utc(g.StartTime),
		EndTime:           utc(g.EndTime),
		Actor:             e.Actor,
		Message:           e.Message,
	}
	if g.RequestedDuration > 0 {
		d.RequestedDuration = isoduration.Format(g.RequestedDuration)
	}
	ev, err := New(e.EventType, e.EventID, e.Time, d)
	if err != nil {
		return event.Event{}, fmt.Errorf("failed to build the event of %s's %s entry: %w", g.ID, shortName(e.EventType), err)
	}
	return ev, nil
}

// utc returns a pointer to t in UTC, or nil for the zero time.
func utc(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// shortName is an event type without its namespace and version, e.g.
// "grant.activated" or "approval.requested": the event ID of audit lines.
func shortName(eventType string) string {
	return strings.TrimSuffix(strings.TrimPrefix(eventType, "dev.jitpipeline."), ".v1")
}
