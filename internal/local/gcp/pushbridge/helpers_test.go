package pushbridge

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
)

const testProject = "p"

var discard = slog.New(slog.DiscardHandler)

// newFake starts a pstest server and a client on it, closed at cleanup.
func newFake(t *testing.T) (*Server, *pubsub.Client) {
	t.Helper()
	srv, err := Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, newClient(t, srv)
}

func newClient(t *testing.T, srv *Server) *pubsub.Client {
	t.Helper()
	c, err := srv.NewClient(t.Context(), testProject)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// startBridge builds and starts a bridge with one route, closed at cleanup.
func startBridge(t *testing.T, cfg Config) *Bridge {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = discard
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// fastRoute is a route with test-sized delays.
func fastRoute(topic, sub, endpoint string) Route {
	return Route{
		Topic: topic, Subscription: sub, Endpoint: endpoint,
		MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond,
		AckDeadline: 5 * time.Second,
	}
}

func publish(t *testing.T, c *pubsub.Client, topic string, m *pubsub.Message) string {
	t.Helper()
	p := c.Publisher(topic)
	defer p.Stop()
	if m.OrderingKey != "" {
		p.EnableMessageOrdering = true
	}
	id, err := p.Publish(t.Context(), m).Get(t.Context())
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return id
}

// ensurePullSub creates topic and a plain pull subscription on it.
func ensurePullSub(t *testing.T, c *pubsub.Client, topic, sub string) {
	t.Helper()
	if err := EnsureTopic(t.Context(), c, topic); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureSubscription(t.Context(), c, &pubsubpb.Subscription{
		Name: SubscriptionName(c.Project(), sub), Topic: TopicName(c.Project(), topic), AckDeadlineSeconds: 10,
	}); err != nil {
		t.Fatal(err)
	}
}

// receiveOne pulls and acknowledges one message from a subscription.
func receiveOne(t *testing.T, c *pubsub.Client, sub string) *pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var (
		once sync.Once
		got  *pubsub.Message
	)
	err := c.Subscriber(sub).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		once.Do(func() { got = m; cancel() })
	})
	if got == nil {
		t.Fatalf("no message on %s: %v", sub, err)
	}
	return got
}

// waitFor polls cond until it holds or the test's deadline passes. Polling
// keeps the tests free of timing assumptions: only the order of events
// matters, never how fast they happen.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-t.Context().Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// unreachableURL is an http URL on a loopback port nobody listens on.
func unreachableURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/fn"
}
