package events

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/jitpipeline/jit/internal/events/pubsubevent"
	"github.com/jitpipeline/jit/internal/grant"
)

const testTopic = "projects/p/topics/events"

// wrap puts a Pub/Sub message into the messagePublished CloudEvent
// Eventarc delivers (docs/google-cloud.md §5: ce-type
// google.cloud.pubsub.topic.v1.messagePublished, ce-source
// //pubsub.googleapis.com/projects/P/topics/T, ce-id the message ID, data
// MessagePublishedData), as the push bridge does.
func wrap(t *testing.T, m pubsubevent.Message) event.Event {
	t.Helper()
	e := event.New()
	e.SetID(m.MessageID)
	e.SetType(pubsubevent.EventType)
	e.SetSource(pubsubevent.Source(testTopic))
	e.SetTime(m.PublishTime)
	if err := e.SetData(event.ApplicationJSON, pubsubevent.MessagePublishedData{
		Subscription: "projects/p/subscriptions/eventarc-grant", Message: m,
	}); err != nil {
		t.Fatal(err)
	}
	return e
}

func messageOf(t *testing.T, e event.Event) pubsubevent.Message {
	t.Helper()
	m, err := Message(e)
	if err != nil {
		t.Fatal(err)
	}
	return pubsubevent.Message{Data: m.Data, Attributes: m.Attributes, MessageID: "17", PublishTime: t0}
}

// TestReceive: an event New built, put on a message and wrapped, comes
// back the same, with its data decoded.
func TestReceive(t *testing.T) {
	t.Parallel()
	want, err := New(TypeActivated, "g-abcdefghijklmnopqrst-3", t0, activatedData())
	if err != nil {
		t.Fatal(err)
	}
	got, d, err := Receive(wrap(t, messageOf(t, want)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(eventJSON(t, want), eventJSON(t, got)); diff != "" {
		t.Errorf("event (-sent +received):\n%s", diff)
	}
	if diff := cmp.Diff(activatedData(), *d); diff != "" {
		t.Errorf("data (-sent +received):\n%s", diff)
	}
}

// eventJSON is the structured form of an event, decoded: comparable.
func eventJSON(t *testing.T, e event.Event) map[string]any {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// workflowPublish reads the attributes the lifecycle workflow's publish
// subworkflow puts on commands (workflows/grant-lifecycle.yaml).
func workflowPublish(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../workflows/grant-lifecycle.yaml")
	if err != nil {
		t.Skipf("no workflow definition: %v", err)
	}
	var wf struct {
		Publish struct {
			Steps []map[string]struct {
				Args struct {
					Body struct {
						Messages []struct {
							Attributes map[string]string `yaml:"attributes"`
						} `yaml:"messages"`
					} `yaml:"body"`
				} `yaml:"args"`
			} `yaml:"steps"`
		} `yaml:"publish"`
	}
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatal(err)
	}
	for _, step := range wf.Publish.Steps {
		for _, s := range step {
			if len(s.Args.Body.Messages) > 0 {
				return s.Args.Body.Messages[0].Attributes
			}
		}
	}
	t.Fatal("the workflow has no publish subworkflow with attributes")
	return nil
}

// TestReceiveWorkflowCommand: commands as the lifecycle workflow publishes
// them (its own source, lower-case content-type, Workflows' time format,
// data = grant summary + callback URL) are accepted. The attribute names
// and the source are read from the workflow definition, so the two cannot
// drift apart.
func TestReceiveWorkflowCommand(t *testing.T) {
	t.Parallel()
	attrs := workflowPublish(t)
	if attrs["ce-source"] != WorkflowSource {
		t.Errorf("the workflow's ce-source is %q, Receive accepts %q", attrs["ce-source"], WorkflowSource)
	}
	values := map[string]string{
		"ce-specversion": "1.0", "ce-type": TypeApprovalRequested, "ce-source": WorkflowSource,
		"ce-id": "exec-1234-approval", "ce-time": "2026-01-02T03:04:05.123456Z", "ce-subject": testGrantID,
		"content-type": "application/json", "Content-Type": "application/json",
	}
	sent := map[string]string{}
	for k := range attrs {
		v, ok := values[k]
		if !ok {
			t.Fatalf("the workflow sets attribute %q, which this test does not know", k)
		}
		sent[k] = v
	}
	data := `{"grantId":"` + testGrantID + `","entitlement":"prod.payments.db-admin","requester":"alice@example.com",` +
		`"state":"APPROVAL_AWAITED","callbackUrl":"https://workflowexecutions.googleapis.com/v1/x/callbacks/1"}`
	e, d, err := Receive(wrap(t, pubsubevent.Message{Data: []byte(data), Attributes: sent, MessageID: "5", PublishTime: t0}))
	if err != nil {
		t.Fatal(err)
	}
	want := &Data{
		GrantID: testGrantID, Entitlement: "prod.payments.db-admin", Requester: "alice@example.com",
		State: grant.ApprovalAwaited, CallbackURL: "https://workflowexecutions.googleapis.com/v1/x/callbacks/1",
	}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("data (-want +got):\n%s", diff)
	}
	if e.ID() != "exec-1234-approval" || e.Type() != TypeApprovalRequested || e.DataContentType() != "application/json" ||
		!e.Time().Equal(time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)) {
		t.Errorf("event = %v", e)
	}
}

// TestReceiveStructured: the binding lets senders choose structured mode
// (Content-Type application/cloudevents+json; pubsub-protocol-binding.md
// §3); Receive reads it too.
func TestReceiveStructured(t *testing.T) {
	t.Parallel()
	want, err := New(TypeActivated, "g-abcdefghijklmnopqrst-3", t0, activatedData())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, d, err := Receive(wrap(t, pubsubevent.Message{
		Data: b, MessageID: "9", PublishTime: t0,
		Attributes: map[string]string{"Content-Type": "application/cloudevents+json; charset=UTF-8"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(eventJSON(t, want), eventJSON(t, got)); diff != "" {
		t.Errorf("event (-sent +received):\n%s", diff)
	}
	if d.GrantID != testGrantID {
		t.Errorf("data = %+v", d)
	}
}

// TestReceivePoison: every malformed delivery is ErrInvalid (acknowledge,
// never retry), and the error says what is wrong.
func TestReceivePoison(t *testing.T) {
	t.Parallel()
	good, err := New(TypeActivated, "g-abcdefghijklmnopqrst-3", t0, activatedData())
	if err != nil {
		t.Fatal(err)
	}
	base := messageOf(t, good)
	msg := func(change func(a map[string]string), data string) pubsubevent.Message {
		m := base
		m.Attributes = maps.Clone(base.Attributes)
		if change != nil {
			change(m.Attributes)
		}
		if data != "" {
			m.Data = []byte(data)
		}
		return m
	}
	set := func(k, v string) func(map[string]string) {
		return func(a map[string]string) {
			if v == "" {
				delete(a, k)
			} else {
				a[k] = v
			}
		}
	}
	wrongState := strings.Replace(string(good.Data()), `"state":"ACTIVE"`, `"state":"ENDED"`, 1)
	otherGrant := strings.Replace(string(good.Data()), testGrantID, "g-zzzzzzzzzzzzzzzzzzzz", 1)

	tests := []struct {
		name  string
		outer func(t *testing.T) event.Event
		want  string // in the error
	}{
		{"not a Pub/Sub delivery", func(t *testing.T) event.Event {
			e := wrap(t, base)
			e.SetType("google.cloud.storage.object.v1.finalized")
			return e
		}, "unexpected event type"},
		{"no message ID", func(t *testing.T) event.Event {
			m := base
			m.MessageID = ""
			return wrap(t, m)
		}, "no messageId"},
		{"no specversion", func(t *testing.T) event.Event { return wrap(t, msg(set("ce-specversion", ""), "")) }, `ce-specversion ""`},
		{"specversion 0.3", func(t *testing.T) event.Event { return wrap(t, msg(set("ce-specversion", "0.3"), "")) }, `ce-specversion "0.3"`},
		{"unknown type", func(t *testing.T) event.Event {
			return wrap(t, msg(set("ce-type", "dev.jitpipeline.grant.extended.v1"), ""))
		}, "unknown event type"},
		{"foreign source", func(t *testing.T) event.Event { return wrap(t, msg(set("ce-source", "//evil.example/x"), "")) }, `source "//evil.example/x"`},
		{"no ID", func(t *testing.T) event.Event { return wrap(t, msg(set("ce-id", ""), "")) }, "id: MUST be a non-empty string"},
		{"bad time", func(t *testing.T) event.Event { return wrap(t, msg(set("ce-time", "yesterday"), "")) }, "not RFC 3339"},
		{"not JSON content", func(t *testing.T) event.Event { return wrap(t, msg(set("Content-Type", "text/plain"), "")) }, `"text/plain"`},
		{"data not JSON", func(t *testing.T) event.Event { return wrap(t, msg(nil, "{")) }, "not JSON"},
		{"data breaks the schema", func(t *testing.T) event.Event { return wrap(t, msg(nil, wrongState)) }, "/state: value must be 'ACTIVE'"},
		{"subject of another grant", func(t *testing.T) event.Event { return wrap(t, msg(nil, otherGrant)) }, "is not the grant ID"},
		{"attribute twice", func(t *testing.T) event.Event { return wrap(t, msg(set("CE-TYPE", TypeRequested), "")) }, "appears twice"},
		{"unknown event format", func(t *testing.T) event.Event {
			return wrap(t, msg(set("Content-Type", "application/cloudevents+avro"), ""))
		}, "unsupported event format"},
		{"structured garbage", func(t *testing.T) event.Event {
			return wrap(t, msg(set("Content-Type", "application/cloudevents+json"), `{"specversion":"1.0"}`))
		}, "invalid event"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, d, err := Receive(tc.outer(t))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
			if d != nil {
				t.Errorf("data = %+v with an error", d)
			}
		})
	}
	// The control: the unchanged message is fine, so the cases above fail
	// for their one change.
	if _, _, err := Receive(wrap(t, msg(nil, ""))); err != nil {
		t.Errorf("control: %v", err)
	}
	// Attribute names are case-insensitive (binding §3.1.3.1).
	if _, _, err := Receive(wrap(t, msg(func(a map[string]string) {
		a["CE-ID"] = a["ce-id"]
		delete(a, "ce-id")
	}, ""))); err != nil {
		t.Errorf("upper-case CE-ID: %v", err)
	}
}

// TestWorkflowCommandsValid: each command the workflow builds (its data
// expressions) names only fields the schemas know; a typo there would make
// every command a poison message.
func TestWorkflowCommandsValid(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../workflows/grant-lifecycle.yaml")
	if err != nil {
		t.Skipf("no workflow definition: %v", err)
	}
	keys := regexp.MustCompile(`"([a-zA-Z]+)":`).FindAllStringSubmatch(string(b), -1)
	known := schemaDoc(t, TypeRevokeRequested)["properties"].(map[string]any)
	maps.Copy(known, schemaDoc(t, TypeActivationRequested)["properties"].(map[string]any))
	for _, k := range keys {
		if _, ok := known[k[1]]; !ok {
			t.Errorf("the workflow sets %q, which no command schema has", k[1])
		}
	}
}

// TestWorkflowCommandShapes: the lifecycle workflow builds each command's
// data as the requested event's grantId, entitlement, requester and state
// plus its callback URLs (and a reason); every combination it can produce
// is valid, or commands would be refused as poison.
func TestWorkflowCommandShapes(t *testing.T) {
	t.Parallel()
	const cb = "https://workflowexecutions.googleapis.com/v1/x/callbacks/"
	subject := func(s grant.State) map[string]any {
		return map[string]any{"grantId": testGrantID, "entitlement": "prod.payments.db-admin",
			"requester": "alice@example.com", "state": string(s)}
	}
	with := func(m map[string]any, kv ...string) map[string]any {
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	requested := []grant.State{grant.ApprovalAwaited, grant.Activating, grant.Scheduled}
	type cmd struct {
		typ  string
		data map[string]any
	}
	cmds := []cmd{
		{TypeApprovalRequested, with(subject(grant.ApprovalAwaited), "callbackUrl", cb+"1")},
		{TypeRevokeRequested, with(subject(grant.ApprovalAwaited), "callbackUrl", cb+"1", "reason", "expired")},
	}
	for _, s := range requested {
		cmds = append(cmds,
			cmd{TypeActivationRequested, with(subject(s), "callbackUrl", cb+"2", "endCallbackUrl", cb+"3")})
		for _, reason := range []string{"end", "withdraw", "revoke"} {
			cmds = append(cmds, cmd{TypeRevokeRequested, with(subject(s), "callbackUrl", cb+"3", "reason", reason)})
		}
	}
	for _, c := range cmds {
		if err := Validate(c.typ, mustJSON(t, c.data)); err != nil {
			t.Errorf("%s %v: %v", c.typ, c.data, err)
		}
	}
}
