package pubsubevent

import (
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

// TestFromEventRefuses: only messagePublished events with a message ID are
// unwrapped (docs/google-cloud.md §5: ce-type google.cloud.pubsub.topic.v1.messagePublished,
// messageId always set by the server).
func TestFromEventRefuses(t *testing.T) {
	t.Parallel()
	mk := func(typ, data string) event.Event {
		e := event.New()
		e.SetID("1")
		e.SetType(typ)
		e.SetSource(Source("projects/p/topics/t"))
		if err := e.SetData(event.ApplicationJSON, []byte(data)); err != nil {
			t.Fatal(err)
		}
		return e
	}
	for name, e := range map[string]event.Event{
		"other type":    mk("google.cloud.storage.object.v1.finalized", `{"message":{"messageId":"1"}}`),
		"no message id": mk(EventType, `{"message":{"data":"eA=="}}`),
		"not json":      mk(EventType, `nope`),
	} {
		if _, err := FromEvent(e); err == nil {
			t.Errorf("%s: FromEvent accepted it", name)
		}
	}
	d, err := FromEvent(mk(EventType, `{"subscription":"projects/p/subscriptions/s","message":{"data":"eA==","messageId":"7"}}`))
	if err != nil || string(d.Message.Data) != "x" || d.Message.MessageID != "7" {
		t.Errorf("FromEvent = %+v, %v", d, err)
	}
	if got := TopicFromSource("//storage.googleapis.com/b"); got != "" {
		t.Errorf("TopicFromSource(storage) = %q", got)
	}
}
