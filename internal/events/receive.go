package events

import (
	"encoding/json"
	"fmt"
	"maps"
	"mime"
	"slices"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/jitpipeline/jit/internal/events/pubsubevent"
)

// WorkflowSource is the source of the commands the lifecycle workflow
// publishes itself (workflows/grant-lifecycle.yaml); Source is everyone
// else's. Receive accepts these two only.
const WorkflowSource = "//jit.pipeline/workflows/grant-lifecycle"

// Receive is the one place a pipeline event delivered by Eventarc is
// unwrapped. e is the messagePublished event carrying the Pub/Sub message
// (docs/google-cloud.md §5); the pipeline event is rebuilt from the message's ce-*
// attributes and data (binary mode; a structured-mode message, Content-Type
// application/cloudevents+json, is read too, as the binding asks of
// receivers), checked (specversion 1.0, a known type, an ID, Source or
// WorkflowSource, a subject equal to the grant ID when present, JSON data valid for
// the type's schema) and its data decoded.
//
// Every error wraps ErrInvalid except a failure to load the embedded
// schemas: a poison message is logged and acknowledged, never retried.
func Receive(e event.Event) (event.Event, *Data, error) {
	m, err := pubsubevent.FromEvent(e)
	if err != nil {
		return event.Event{}, nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	inner, err := fromMessage(m.Message)
	if err != nil {
		return event.Event{}, nil, fmt.Errorf("failed to read the event in Pub/Sub message %q: %w", m.Message.MessageID, err)
	}
	d, err := check(inner)
	if err != nil {
		return event.Event{}, nil, fmt.Errorf("failed to accept event %q in Pub/Sub message %q: %w", inner.ID(), m.Message.MessageID, err)
	}
	return inner, d, nil
}

// fromMessage rebuilds a CloudEvent from a Pub/Sub message per the
// CloudEvents Pub/Sub protocol binding.
func fromMessage(m pubsubevent.Message) (event.Event, error) {
	// "Attribute names are case-insensitive" (binding §3.1.3.1).
	attrs := make(map[string]string, len(m.Attributes))
	for k, v := range m.Attributes {
		k = strings.ToLower(k)
		if prev, dup := attrs[k]; dup && prev != v {
			return event.Event{}, fmt.Errorf("%w: attribute %q appears twice with different values", ErrInvalid, k)
		}
		attrs[k] = v
	}
	ct := attrs[strings.ToLower(AttrContentType)]
	if strings.HasPrefix(ct, "application/cloudevents") {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != event.ApplicationCloudEventsJSON {
			return event.Event{}, fmt.Errorf("%w: unsupported event format %q", ErrInvalid, ct)
		}
		var e event.Event
		if err := json.Unmarshal(m.Data, &e); err != nil {
			return event.Event{}, fmt.Errorf("%w: structured event: %w", ErrInvalid, err)
		}
		return e, nil
	}
	sv := attrs[AttrPrefix+"specversion"]
	if sv != event.CloudEventsVersionV1 {
		return event.Event{}, fmt.Errorf("%w: ce-specversion %q, want %q", ErrInvalid, sv, event.CloudEventsVersionV1)
	}
	e := event.New(sv)
	// Sorted, so that errors and extension order do not depend on map order.
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		name, ok := strings.CutPrefix(k, AttrPrefix)
		if !ok {
			continue // Content-Type, or attributes Pub/Sub or others add
		}
		v := attrs[k]
		switch name {
		case "specversion":
		case "id":
			e.SetID(v)
		case "source":
			e.SetSource(v)
		case "type":
			e.SetType(v)
		case "subject":
			e.SetSubject(v)
		case "dataschema":
			e.SetDataSchema(v)
		case "datacontenttype":
			// The spec's own example spells it so; Content-Type wins.
			if ct == "" {
				ct = v
			}
		case "time":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return event.Event{}, fmt.Errorf("%w: ce-time %q is not RFC 3339", ErrInvalid, v)
			}
			e.SetTime(t)
		default:
			e.SetExtension(name, v)
		}
	}
	if ct == "" {
		ct = event.ApplicationJSON
	}
	e.SetDataContentType(ct)
	e.DataEncoded = m.Data
	return e, nil
}

// check is what both ends require of a pipeline event; it returns the
// decoded data.
func check(e event.Event) (*Data, error) {
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if e.SpecVersion() != event.CloudEventsVersionV1 {
		return nil, fmt.Errorf("%w: specversion %q, want %q", ErrInvalid, e.SpecVersion(), event.CloudEventsVersionV1)
	}
	if !slices.Contains(Types, e.Type()) {
		return nil, fmt.Errorf("%w: unknown event type %q", ErrInvalid, e.Type())
	}
	if src := e.Source(); src != Source && src != WorkflowSource {
		return nil, fmt.Errorf("%w: source %q, want %q or %q", ErrInvalid, src, Source, WorkflowSource)
	}
	if ct := e.DataContentType(); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != event.ApplicationJSON {
			return nil, fmt.Errorf("%w: data content type %q, want %q", ErrInvalid, ct, event.ApplicationJSON)
		}
	}
	if err := Validate(e.Type(), e.Data()); err != nil {
		return nil, err
	}
	var d Data
	if err := json.Unmarshal(e.Data(), &d); err != nil {
		return nil, fmt.Errorf("%w: %s data: %w", ErrInvalid, e.Type(), err)
	}
	if s := e.Subject(); s != "" && s != d.GrantID {
		return nil, fmt.Errorf("%w: subject %q is not the grant ID %q", ErrInvalid, s, d.GrantID)
	}
	return &d, nil
}
