// Package pubsubevent is the envelope that Eventarc puts around a Pub/Sub
// message when it delivers it to a Cloud Function as a CloudEvent
// (docs/google-cloud.md §5). It is tiny and depends only on the CloudEvents SDK, so
// function code can unwrap events with it without pulling in the local
// push bridge or any Pub/Sub client.
package pubsubevent

import (
	"fmt"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// EventType is the CloudEvent type of a Pub/Sub message delivered by
// Eventarc.
const EventType = "google.cloud.pubsub.topic.v1.messagePublished"

// SourcePrefix starts the CloudEvent source; the topic's full name follows:
// //pubsub.googleapis.com/projects/P/topics/T.
const SourcePrefix = "//pubsub.googleapis.com/"

// MessagePublishedData is the CloudEvent data of a messagePublished event.
type MessagePublishedData struct {
	Message Message `json:"message"`
	// Subscription is the full name, projects/P/subscriptions/S.
	Subscription string `json:"subscription"`
}

// Message is the Pub/Sub message inside MessagePublishedData. Data is
// base64 in JSON, which is what encoding/json does with a []byte.
type Message struct {
	Data        []byte            `json:"data,omitempty"`
	Attributes  map[string]string `json:"attributes,omitempty"`
	MessageID   string            `json:"messageId"`
	PublishTime time.Time         `json:"publishTime"`
	OrderingKey string            `json:"orderingKey,omitempty"`
}

// Source is the CloudEvent source for a topic's full name.
func Source(topic string) string { return SourcePrefix + topic }

// TopicFromSource returns the topic's full name from a CloudEvent source,
// or "" if the source is not a Pub/Sub topic.
func TopicFromSource(source string) string {
	topic, ok := strings.CutPrefix(source, SourcePrefix)
	if !ok || !strings.HasPrefix(topic, "projects/") || !strings.Contains(topic, "/topics/") {
		return ""
	}
	return topic
}

// FromEvent checks that e is a messagePublished event and decodes its data.
func FromEvent(e event.Event) (*MessagePublishedData, error) {
	if e.Type() != EventType {
		return nil, fmt.Errorf("unexpected event type %q, want %q", e.Type(), EventType)
	}
	var d MessagePublishedData
	if err := e.DataAs(&d); err != nil {
		return nil, fmt.Errorf("failed to decode %s data: %w", EventType, err)
	}
	if d.Message.MessageID == "" {
		return nil, fmt.Errorf("event %q: message has no messageId", e.ID())
	}
	return &d, nil
}
