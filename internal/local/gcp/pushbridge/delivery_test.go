package pushbridge

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/auth"
	"github.com/jitpipeline/jit/internal/events/pubsubevent"
	"github.com/jitpipeline/jit/internal/local/gcp/localoidc"
)

func TestDeliveryPstest(t *testing.T) {
	t.Parallel()
	srv, _ := newFake(t)
	testDelivery(t, srv)
}

func TestDeadLetterPstest(t *testing.T) {
	t.Parallel()
	srv, _ := newFake(t)
	testDeadLetter(t, srv)
}

// testDelivery checks the request a CloudEvent function receives, end to
// end: a real cloudevents receive handler (what functions-framework-go
// wraps every CloudEvent function in) decodes it, and an error from the
// function is redelivered.
//
// Facts: binary mode, ce-* attributes and MessagePublishedData shape
// (docs/google-cloud.md §5, [doc] eventarc/docs/event-format, FF events_test.go);
// the handler answers 500 for an error and 200 for nil (§6, sdk-go
// protocol.go); OIDC token audience defaults to the endpoint URL and
// carries the service account's email (§7, [doc]
// pubsub/docs/authenticate-push-subscriptions).
func testDelivery(t *testing.T, srv *Server) {
	c := newClient(t, srv)
	signer, err := localoidc.Open("")
	if err != nil {
		t.Fatal(err)
	}
	const sa = "eventarc-trigger@p.iam.gserviceaccount.com"

	var (
		mu     sync.Mutex
		events []cloudevents.Event
		data   []*pubsubevent.MessagePublishedData
		hdrs   []http.Header
	)
	fn := func(_ context.Context, e cloudevents.Event) error {
		d, err := pubsubevent.FromEvent(e)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
		data = append(data, d)
		if len(events) == 1 {
			return errors.New("first attempt fails")
		}
		return nil
	}
	p, err := cloudevents.NewHTTP()
	if err != nil {
		t.Fatal(err)
	}
	ceHandler, err := cloudevents.NewHTTPReceiveHandler(t.Context(), p, fn)
	if err != nil {
		t.Fatal(err)
	}
	// The production verifier, with the local keys.
	idTokens, err := auth.NewGoogle(auth.GoogleConfig{KeysJSON: signer.JWKS()})
	if err != nil {
		t.Fatal(err)
	}
	var endpoint string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		const prefix = "Bearer "
		auth := r.Header.Get("Authorization")
		if len(auth) <= len(prefix) {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		claims, err := idTokens.Verify(auth[len(prefix):], endpoint)
		if err != nil || claims.Email != sa || !claims.EmailVerified {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		hdrs = append(hdrs, r.Header.Clone())
		mu.Unlock()
		ceHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	endpoint = ts.URL + "/grant-requested"

	route := fastRoute("requests", "requests-trigger", endpoint)
	route.OIDC = &OIDC{ServiceAccountEmail: sa}
	b := startBridge(t, Config{Client: c, Signer: signer, Routes: []Route{route}})

	id := publish(t, c, "requests", &pubsub.Message{
		Data:        []byte(`{"grant":"g-1"}`),
		Attributes:  map[string]string{"kind": "request"},
		OrderingKey: "g-1",
	})
	waitFor(t, "acknowledgement", func() bool { return b.Stats("requests-trigger").Acked == 1 })

	if diff := cmp.Diff(Stats{Pushes: 2, Delivered: 1, FailedAttempts: 1, Acked: 1}, b.Stats("requests-trigger")); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 {
		t.Fatalf("function ran %d times, want 2 (one failure, one redelivery)", len(events))
	}
	e, d := events[1], data[1]
	if d.Message.PublishTime.IsZero() {
		t.Fatal("publishTime is zero")
	}
	want := &pubsubevent.MessagePublishedData{
		Subscription: "projects/p/subscriptions/requests-trigger",
		Message: pubsubevent.Message{
			Data:        []byte(`{"grant":"g-1"}`),
			Attributes:  map[string]string{"kind": "request"},
			MessageID:   id,
			PublishTime: d.Message.PublishTime,
			OrderingKey: "g-1",
		},
	}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("MessagePublishedData (-want +got):\n%s", diff)
	}
	gotCE := map[string]string{
		"specversion": e.SpecVersion(), "type": e.Type(), "source": e.Source(), "id": e.ID(),
		"datacontenttype": e.DataContentType(),
	}
	wantCE := map[string]string{
		"specversion": "1.0", "type": "google.cloud.pubsub.topic.v1.messagePublished",
		"source": "//pubsub.googleapis.com/projects/p/topics/requests", "id": id,
		"datacontenttype": "application/json",
	}
	if diff := cmp.Diff(wantCE, gotCE); diff != "" {
		t.Errorf("CloudEvent attributes (-want +got):\n%s", diff)
	}
	if !e.Time().Equal(d.Message.PublishTime) {
		t.Errorf("ce-time %v != publishTime %v", e.Time(), d.Message.PublishTime)
	}
	if got := pubsubevent.TopicFromSource(e.Source()); got != "projects/p/topics/requests" {
		t.Errorf("TopicFromSource = %q", got)
	}
	// Binary content mode: attributes travel as headers, not in the body.
	h := hdrs[1]
	if h.Get("ce-specversion") != "1.0" || h.Get("Content-Type") != "application/json" || h.Get("ce-time") == "" {
		t.Errorf("headers = %v, want binary-mode CloudEvent", h)
	}
	if _, err := time.Parse(time.RFC3339, h.Get("ce-time")); err != nil {
		t.Errorf("ce-time %q is not RFC 3339: %v", h.Get("ce-time"), err)
	}
}

// testDeadLetter checks that connection errors are retried and that after
// MaxDeliveryAttempts the message is forwarded with the source attributes
// and acknowledged. Facts: max_delivery_attempts 5..100, attempts = 1 +
// NACKs + deadline expiries (§5, pubsub.pb.go DeadLetterPolicy); Pub/Sub
// "wraps the original message in a new one and adds attributes that
// identify the source subscription" ([doc] pubsub/docs/handling-failures;
// attribute names [2nd], see AttrDeadLetter*).
func testDeadLetter(t *testing.T, srv *Server) {
	c := newClient(t, srv)
	ensurePullSub(t, c, "dead", "dead-audit")
	route := fastRoute("orders", "orders-trigger", unreachableURL(t))
	route.DeadLetterTopic = "dead"
	b := startBridge(t, Config{Client: c, Routes: []Route{route}})

	sub, err := c.SubscriptionAdminClient.GetSubscription(t.Context(), &pubsubpb.GetSubscriptionRequest{Subscription: "projects/p/subscriptions/orders-trigger"})
	if err != nil {
		t.Fatal(err)
	}
	if got := sub.GetDeadLetterPolicy(); got.GetDeadLetterTopic() != "projects/p/topics/dead" || got.GetMaxDeliveryAttempts() != 5 {
		t.Errorf("subscription dead-letter policy = %v, want projects/p/topics/dead after 5", got)
	}

	id := publish(t, c, "orders", &pubsub.Message{Data: []byte("order-1"), Attributes: map[string]string{"k": "v"}})
	waitFor(t, "dead-lettering", func() bool { return b.Stats("orders-trigger").DeadLettered == 1 })

	m := receiveOne(t, c, "dead-audit")
	if string(m.Data) != "order-1" {
		t.Errorf("dead-letter data = %q", m.Data)
	}
	pt := m.Attributes[AttrDeadLetterTopicPublishTime]
	if _, err := time.Parse(time.RFC3339Nano, pt); err != nil {
		t.Errorf("%s = %q: %v", AttrDeadLetterTopicPublishTime, pt, err)
	}
	wantAttrs := map[string]string{
		"k":                               "v",
		AttrDeadLetterDeliveryCount:       "5",
		AttrDeadLetterSubscription:        "orders-trigger",
		AttrDeadLetterSubscriptionProject: "p",
		AttrDeadLetterTopicPublishTime:    pt,
	}
	if diff := cmp.Diff(wantAttrs, m.Attributes); diff != "" {
		t.Errorf("dead-letter attributes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Stats{Pushes: 5, FailedAttempts: 5, DeadLettered: 1}, b.Stats("orders-trigger")); diff != "" {
		t.Errorf("stats for %s (-want +got):\n%s", id, diff)
	}
}
