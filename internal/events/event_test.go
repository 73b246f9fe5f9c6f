package events

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/grant"
)

const testGrantID = "g-abcdefghijklmnopqrst"

var (
	t0       = time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	testPriv = []grant.Privilege{{Resource: "projects/payments-prod", Role: "roles/cloudsql.admin"}}
)

func activatedData() Data {
	start, end := t0, t0.Add(time.Hour)
	return Data{
		GrantID: testGrantID, Entitlement: "prod.payments.db-admin", Requester: "alice@example.com",
		State: grant.Active, Justification: "INC-1234", RequestedDuration: "PT1H", Privileges: testPriv,
		StartTime: &start, EndTime: &end, Actor: "grant-function",
	}
}

// TestNew: New gives a valid CloudEvents 1.0 event (sdk-go's Validate) with
// the pipeline's source, the grant ID as subject, JSON data and the
// schema's URL as dataschema.
func TestNew(t *testing.T) {
	t.Parallel()
	d := activatedData()
	e, err := New(TypeActivated, "g-abcdefghijklmnopqrst-3", t0.In(time.FixedZone("CET", 3600)), d)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Validate(); err != nil {
		t.Fatalf("e.Validate() = %v", err)
	}
	got := map[string]any{
		"specversion": e.SpecVersion(), "id": e.ID(), "source": e.Source(), "type": e.Type(),
		"subject": e.Subject(), "time": e.Time(), "datacontenttype": e.DataContentType(),
		"dataschema": e.DataSchema(),
	}
	want := map[string]any{
		"specversion": "1.0", "id": "g-abcdefghijklmnopqrst-3", "source": "//jit.pipeline/grants",
		"type": "dev.jitpipeline.grant.activated.v1", "subject": testGrantID, "time": t0,
		"datacontenttype": "application/json",
		"dataschema":      "https://raw.githubusercontent.com/jitpipeline/jit/main/schemas/dev.jitpipeline.grant.activated.v1.json",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("attributes (-want +got):\n%s", diff)
	}
	if e.Time().Location() != time.UTC {
		t.Errorf("time %v is not in UTC", e.Time())
	}
	var back Data
	if err := e.DataAs(&back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d, back); diff != "" {
		t.Errorf("data (-want +got):\n%s", diff)
	}
	// Structured JSON carries the data as JSON, not base64.
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"data":{"grantId":"`+testGrantID) {
		t.Errorf("structured form does not hold JSON data: %s", b)
	}
}

// TestNewRefuses: nothing that breaks the contract is built.
func TestNewRefuses(t *testing.T) {
	t.Parallel()
	wrongState := activatedData()
	wrongState.State = grant.Activating
	noEnd := activatedData()
	noEnd.EndTime = nil
	tests := map[string]struct {
		typ, id string
		time    time.Time
		d       Data
	}{
		"wrong state":  {TypeActivated, "x-1", t0, wrongState},
		"no end time":  {TypeActivated, "x-1", t0, noEnd},
		"unknown type": {"dev.jitpipeline.grant.extended.v1", "x-1", t0, activatedData()},
		"no ID":        {TypeActivated, "", t0, activatedData()},
		"no time":      {TypeActivated, "x-1", time.Time{}, activatedData()},
	}
	for name, tc := range tests {
		if _, err := New(tc.typ, tc.id, tc.time, tc.d); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	_, err := New(TypeActivated, "x-1", t0, noEnd)
	var de *DataError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "missing property 'endTime'") {
		t.Errorf("no end time: err = %v, want a DataError naming endTime", err)
	}
}

// newGrant walks a grant through request, a partial approval, the
// approval and activation, as the functions do.
func newGrant(t *testing.T) *grant.Grant {
	t.Helper()
	cet := time.FixedZone("CET", 3600)
	g := &grant.Grant{
		ID: testGrantID, Entitlement: "prod.payments.db-admin", Requester: "alice@example.com",
		Justification: "INC-1234", Inputs: map[string]any{"ticket": "SECRET-TICKET-42"},
		RequestedDuration: 90 * time.Minute, Privileges: testPriv,
		ApprovalRequired: true, RequiredApprovals: 2, ApprovalDeadline: t0.Add(time.Hour).In(cet),
		Approvers:        []string{"user:bob@example.com", "group:dba@example.com"},
		ApprovalCallback: "https://workflowexecutions.googleapis.com/cb/approval-SECRET",
		EndCallback:      "https://workflowexecutions.googleapis.com/cb/end-SECRET",
	}
	must := func(_ *grant.Entry, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(g.Transition(grant.ApprovalAwaited, TypeRequested, t0, "alice@example.com", "awaiting 2 approvals"))
	g.Record(TypeApproved, t0.Add(time.Minute), "bob@example.com", "approved (1 of 2)")
	must(g.Transition(grant.Activating, TypeApproved, t0.Add(2*time.Minute), "carol@example.com", "approved (2 of 2)"))
	g.StartTime, g.EndTime = t0.Add(3*time.Minute).In(cet), t0.Add(93*time.Minute).In(cet)
	must(g.Transition(grant.Active, TypeActivated, t0.Add(3*time.Minute), "grant-function", ""))
	return g
}

// TestFromGrantEntry: each timeline entry becomes its event: ID, time,
// type, state, actor and message from the entry, the rest from the grant,
// times in UTC, the duration in ISO 8601; callback URLs and inputs never.
func TestFromGrantEntry(t *testing.T) {
	t.Parallel()
	g := newGrant(t)
	deadline, start, end := t0.Add(time.Hour), t0.Add(3*time.Minute), t0.Add(93*time.Minute)
	common := Data{
		GrantID: testGrantID, Entitlement: "prod.payments.db-admin", Requester: "alice@example.com",
		Justification: "INC-1234", RequestedDuration: "PT1H30M", Privileges: testPriv,
		ApprovalRequired: true, RequiredApprovals: 2, ApprovalDeadline: &deadline,
		Approvers: []string{"user:bob@example.com", "group:dba@example.com"},
		StartTime: &start, EndTime: &end,
	}
	with := func(s grant.State, actor, msg string) Data {
		d := common
		d.State, d.Actor, d.Message = s, actor, msg
		return d
	}
	want := []struct {
		typ, id string
		time    time.Time
		d       Data
	}{
		{TypeRequested, testGrantID + "-1", t0, with(grant.ApprovalAwaited, "alice@example.com", "awaiting 2 approvals")},
		{TypeApproved, testGrantID + "-2", t0.Add(time.Minute), with(grant.ApprovalAwaited, "bob@example.com", "approved (1 of 2)")},
		{TypeApproved, testGrantID + "-3", t0.Add(2 * time.Minute), with(grant.Activating, "carol@example.com", "approved (2 of 2)")},
		{TypeActivated, testGrantID + "-4", t0.Add(3 * time.Minute), with(grant.Active, "grant-function", "")},
	}
	if len(g.Timeline) != len(want) {
		t.Fatalf("timeline has %d entries, want %d", len(g.Timeline), len(want))
	}
	for i, entry := range g.Timeline {
		e, err := FromGrantEntry(g, entry)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		w := want[i]
		if e.Type() != w.typ || e.ID() != w.id || !e.Time().Equal(w.time) || e.Subject() != testGrantID {
			t.Errorf("entry %d: type %s id %s time %v subject %s; want %s %s %v %s",
				i, e.Type(), e.ID(), e.Time(), e.Subject(), w.typ, w.id, w.time, testGrantID)
		}
		var d Data
		if err := e.DataAs(&d); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(w.d, d); diff != "" {
			t.Errorf("entry %d data (-want +got):\n%s", i, diff)
		}
		for _, secret := range []string{"SECRET", "ticket", "callback"} {
			if strings.Contains(strings.ToLower(string(e.Data())), strings.ToLower(secret)) {
				t.Errorf("entry %d data leaks %q: %s", i, secret, e.Data())
			}
		}
		if !strings.Contains(string(e.Data()), `"startTime":"2026-01-02T03:07:05.123456789Z"`) {
			t.Errorf("entry %d: times not in UTC: %s", i, e.Data())
		}
	}
}

// TestFromGrantEntryInvalid: an entry whose event would break its schema
// is refused, so the outbox never publishes it.
func TestFromGrantEntryInvalid(t *testing.T) {
	t.Parallel()
	g := newGrant(t)
	bad := g.Timeline[0]
	bad.EventType = TypeDenied // DENIED state and a reason required
	if _, err := FromGrantEntry(g, bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("denied event of an APPROVAL_AWAITED entry: err = %v, want ErrInvalid", err)
	}
	if _, err := FromGrantEntry(nil, g.Timeline[0]); err == nil {
		t.Error("FromGrantEntry(nil) succeeded")
	}
}

// TestMessage: binary content mode of the CloudEvents Pub/Sub protocol
// binding (cloudevents/spec pubsub-protocol-binding.md §3.1: data as is,
// datacontenttype in Content-Type, every other attribute "ce-"+name in its
// canonical string form; time RFC 3339).
func TestMessage(t *testing.T) {
	t.Parallel()
	e, err := New(TypeActivated, "g-abcdefghijklmnopqrst-3", t0, activatedData())
	if err != nil {
		t.Fatal(err)
	}
	e.SetExtension("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	m, err := Message(e)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ce-specversion": "1.0",
		"ce-type":        "dev.jitpipeline.grant.activated.v1",
		"ce-source":      "//jit.pipeline/grants",
		"ce-id":          "g-abcdefghijklmnopqrst-3",
		"ce-time":        "2026-01-02T03:04:05.123456789Z",
		"ce-subject":     testGrantID,
		"ce-dataschema":  SchemaURL(TypeActivated),
		"ce-traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"Content-Type":   "application/json",
	}
	if diff := cmp.Diff(want, m.Attributes); diff != "" {
		t.Errorf("attributes (-want +got):\n%s", diff)
	}
	if string(m.Data) != string(e.Data()) {
		t.Errorf("data = %s, want %s", m.Data, e.Data())
	}
	if _, err := time.Parse(time.RFC3339, m.Attributes["ce-time"]); err != nil {
		t.Errorf("ce-time is not RFC 3339: %v", err)
	}

	old := event.New(event.CloudEventsVersionV03)
	old.SetID("1")
	if _, err := Message(old); !errors.Is(err, ErrInvalid) {
		t.Errorf("Message(v0.3 event) err = %v, want ErrInvalid", err)
	}
}
