package pushbridge

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/google/go-cmp/cmp"
)

// lockedBuffer is a log sink safe for concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRetryUntilSuccessCode: only 200/201/202/204 (and 102) acknowledge a
// push ([doc] https://cloud.google.com/pubsub/docs/push), anything else is
// redelivered with exponential backoff between the minimum and maximum
// (docs/google-cloud.md §5, RetryPolicy). Every outcome is logged, without the body.
func TestRetryUntilSuccessCode(t *testing.T) {
	t.Parallel()
	_, c := newFake(t)
	statuses := []int{http.StatusInternalServerError, http.StatusNonAuthoritativeInfo, http.StatusTooManyRequests, http.StatusNoContent}
	var (
		mu    sync.Mutex
		times []time.Time
	)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		code := statuses[min(len(times), len(statuses))-1]
		mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(ts.Close)

	logs := &lockedBuffer{}
	route := fastRoute("t", "s", ts.URL)
	route.MinBackoff, route.MaxBackoff = 20*time.Millisecond, 40*time.Millisecond
	b := startBridge(t, Config{Client: c, Routes: []Route{route}, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	const secret = "secret-payload"
	publish(t, c, "t", &pubsub.Message{Data: []byte(secret)})
	waitFor(t, "acknowledgement", func() bool { return b.Stats("s").Acked == 1 })

	if diff := cmp.Diff(Stats{Pushes: 4, Delivered: 1, FailedAttempts: 3, Acked: 1}, b.Stats("s")); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	mu.Lock()
	defer mu.Unlock()
	// Lower bounds only: the bridge waits at least the backoff before it
	// hands the message back, however slow the machine.
	for i, want := range []time.Duration{20 * time.Millisecond, 40 * time.Millisecond, 40 * time.Millisecond} {
		if gap := times[i+1].Sub(times[i]); gap < want {
			t.Errorf("gap before attempt %d = %v, want >= %v", i+2, gap, want)
		}
	}

	out := logs.String()
	if strings.Contains(out, secret) || strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(secret))) {
		t.Errorf("logs contain the message body:\n%s", out)
	}
	var outcomes []string
	var statusesLogged []int
	for line := range strings.Lines(out) {
		var e struct {
			Msg         string `json:"msg"`
			Outcome     string `json:"outcome"`
			MessageID   string `json:"message_id"`
			HTTPRequest struct {
				Status int `json:"status"`
			} `json:"httpRequest"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if e.MessageID == "" {
			t.Errorf("log line without message_id: %s", line)
		}
		outcomes = append(outcomes, e.Outcome)
		statusesLogged = append(statusesLogged, e.HTTPRequest.Status)
	}
	if diff := cmp.Diff([]string{"failed", "failed", "failed", "delivered"}, outcomes); diff != "" {
		t.Errorf("logged outcomes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(statuses, statusesLogged); diff != "" {
		t.Errorf("logged statuses (-want +got):\n%s", diff)
	}
}

// TestAckDeadlineIsPushTimeout: "For push delivery it is also the request
// timeout" (docs/google-cloud.md §5, pubsub.pb.go Subscription.AckDeadlineSeconds).
func TestAckDeadlineIsPushTimeout(t *testing.T) {
	t.Parallel()
	_, c := newFake(t)
	var (
		mu        sync.Mutex
		calls     int
		cancelled bool
	)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // lets the server notice the client hanging up; it errs when it does
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			select {
			case <-r.Context().Done(): // the bridge gave up
				mu.Lock()
				cancelled = true
				mu.Unlock()
			case <-time.After(30 * time.Second):
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(ts.Close)
	route := fastRoute("t", "s", ts.URL)
	route.AckDeadline = 100 * time.Millisecond
	b := startBridge(t, Config{Client: c, Routes: []Route{route}})
	publish(t, c, "t", &pubsub.Message{Data: []byte("x")})
	waitFor(t, "acknowledgement", func() bool { return b.Stats("s").Acked == 1 })
	waitFor(t, "the first request to be abandoned", func() bool { mu.Lock(); defer mu.Unlock(); return cancelled })
	if diff := cmp.Diff(Stats{Pushes: 2, Delivered: 1, FailedAttempts: 1, Acked: 1}, b.Stats("s")); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// recorder is an endpoint that answers 200 and remembers message data in
// arrival order.
type recorder struct {
	mu   sync.Mutex
	data []string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var d MessagePublishedData
	if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rec.mu.Lock()
	rec.data = append(rec.data, string(d.Message.Data))
	rec.mu.Unlock()
}

func (rec *recorder) got() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.data)
}

// TestChaosDuplicates: at-least-once delivery may repeat a message even
// after a successful push (docs/google-cloud.md §5: at-least-once, no exactly-once
// with push); the options force it, deterministically.
func TestChaosDuplicates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		chaos          Chaos
		wantDuplicated int64
	}{
		{name: "every second", chaos: Chaos{DuplicateEvery: 2}, wantDuplicated: 2},
		{name: "always", chaos: Chaos{DuplicateProbability: 1}, wantDuplicated: 4},
		{name: "never", chaos: Chaos{}, wantDuplicated: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, c := newFake(t)
			rec := &recorder{}
			ts := httptest.NewServer(rec)
			t.Cleanup(ts.Close)
			route := fastRoute("t", "s", ts.URL)
			route.Concurrency = 1
			route.Chaos = tc.chaos
			b := startBridge(t, Config{Client: c, Routes: []Route{route}})
			for i := range 4 {
				publish(t, c, "t", &pubsub.Message{Data: fmt.Appendf(nil, "m%d", i)})
			}
			waitFor(t, "4 acknowledgements", func() bool { return b.Stats("s").Acked == 4 })
			want := Stats{Pushes: 4 + tc.wantDuplicated, Delivered: 4 + tc.wantDuplicated, Duplicated: tc.wantDuplicated, Acked: 4}
			if diff := cmp.Diff(want, b.Stats("s")); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			counts := map[string]int{}
			for _, d := range rec.got() {
				counts[d]++
			}
			twice := 0
			for _, n := range counts {
				if n == 2 {
					twice++
				}
			}
			if len(counts) != 4 || int64(twice) != tc.wantDuplicated {
				t.Errorf("deliveries per message = %v, want 4 messages, %d of them twice", counts, tc.wantDuplicated)
			}
		})
	}
}

// TestChaosReorder: the window shuffles deliveries with a seeded RNG, so
// the same seed gives the same order; Pub/Sub gives no order without
// ordering keys (docs/google-cloud.md §5, Ordering).
func TestChaosReorder(t *testing.T) {
	t.Parallel()
	run := func(seed uint64) []string {
		_, c := newFake(t)
		rec := &recorder{}
		ts := httptest.NewServer(rec)
		t.Cleanup(ts.Close)
		route := fastRoute("t", "s", ts.URL)
		route.Concurrency = 1
		route.Chaos = Chaos{ReorderWindow: 4, ReorderHold: time.Minute, Seed: seed}
		// Publish before the bridge pulls so the window fills with all four.
		ensurePullSub(t, c, "t", "s")
		for i := range 4 {
			publish(t, c, "t", &pubsub.Message{Data: fmt.Appendf(nil, "m%d", i)})
		}
		b := startBridge(t, Config{Client: c, Routes: []Route{route}})
		waitFor(t, "4 acknowledgements", func() bool { return b.Stats("s").Acked == 4 })
		return rec.got()
	}
	published := []string{"m0", "m1", "m2", "m3"}
	first := run(7)
	if diff := cmp.Diff(published, slices.Sorted(slices.Values(first))); diff != "" {
		t.Fatalf("deliveries are not the published messages (-want +got):\n%s", diff)
	}
	if slices.Equal(first, published) {
		t.Errorf("order %v is the publish order; the window did not shuffle", first)
	}
	if again := run(7); !slices.Equal(first, again) {
		t.Errorf("same seed gave %v, then %v", first, again)
	}
}

// TestConcurrencyBound: no more than Concurrency pushes are in flight.
func TestConcurrencyBound(t *testing.T) {
	t.Parallel()
	_, c := newFake(t)
	var (
		mu             sync.Mutex
		inflight, most int
	)
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		inflight++
		most = max(most, inflight)
		mu.Unlock()
		<-release
		mu.Lock()
		inflight--
		mu.Unlock()
	}))
	t.Cleanup(ts.Close)
	route := fastRoute("t", "s", ts.URL)
	route.Concurrency = 2
	b := startBridge(t, Config{Client: c, Routes: []Route{route}})
	for i := range 6 {
		publish(t, c, "t", &pubsub.Message{Data: fmt.Appendf(nil, "m%d", i)})
	}
	waitFor(t, "2 pushes in flight", func() bool { mu.Lock(); defer mu.Unlock(); return inflight == 2 })
	time.Sleep(50 * time.Millisecond) // give a third push the chance to break the bound
	mu.Lock()
	if most != 2 {
		t.Errorf("%d pushes were in flight at once, want 2", most)
	}
	mu.Unlock()
	close(release)
	waitFor(t, "6 acknowledgements", func() bool { return b.Stats("s").Acked == 6 })
}

// TestCloseWaitsForInFlightPush: Close stops pulling but lets a push in
// flight finish and be acknowledged.
func TestCloseWaitsForInFlightPush(t *testing.T) {
	t.Parallel()
	_, c := newFake(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		once.Do(func() { close(entered) })
		<-release
	}))
	t.Cleanup(ts.Close)
	b := startBridge(t, Config{Client: c, Routes: []Route{fastRoute("t", "s", ts.URL)}})
	publish(t, c, "t", &pubsub.Message{Data: []byte("x")})
	<-entered
	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a push was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-closed
	if diff := cmp.Diff(Stats{Pushes: 1, Delivered: 1, Acked: 1}, b.Stats("s")); diff != "" {
		t.Errorf("stats after Close (-want +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	_, c := newFake(t)
	ok := fastRoute("t", "s", "http://127.0.0.1:1/fn")
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{name: "valid", cfg: Config{Client: c, Routes: []Route{ok}}},
		{name: "empty", cfg: Config{}, want: []string{"client is required", "at least one route"}},
		{
			name: "every route problem at once",
			cfg:  Config{Client: c, Routes: []Route{{Endpoint: "ftp://x", MinBackoff: time.Second, MaxBackoff: time.Millisecond, AckDeadline: time.Hour}}},
			want: []string{"topic is required", "subscription is required", "not an absolute http(s) URL", "exceeds max backoff", "ack deadline 1h0m0s"},
		},
		{
			// max_delivery_attempts must be 5..100 (docs/google-cloud.md §5, pubsub.pb.go).
			name: "attempts out of range",
			cfg:  Config{Client: c, Routes: []Route{func() Route { r := ok; r.DeadLetterTopic, r.MaxDeliveryAttempts = "d", 3; return r }()}},
			want: []string{"max delivery attempts 3 is outside 5..100"},
		},
		{
			name: "oidc without signer, duplicate subscription",
			cfg:  Config{Client: c, Routes: []Route{func() Route { r := ok; r.OIDC = &OIDC{}; return r }(), ok}},
			want: []string{"OIDC needs a signer", "OIDC service account email is required", "has two routes"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil, want errors")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, missing %q", err, w)
				}
			}
		})
	}
}

// TestEnsureIsIdempotentAcrossRestart: pstest keeps everything in memory
// (docs/google-cloud.md §5), so after a restart the subscription is gone and Ensure*
// must re-create it; a second Ensure tolerates ALREADY_EXISTS.
func TestEnsureIsIdempotentAcrossRestart(t *testing.T) {
	t.Parallel()
	srv, c := newFake(t)
	sub := &pubsubpb.Subscription{Name: "projects/p/subscriptions/s", Topic: "projects/p/topics/t", AckDeadlineSeconds: 10}
	for range 2 {
		if err := EnsureTopic(t.Context(), c, "t"); err != nil {
			t.Fatal(err)
		}
		if _, err := EnsureSubscription(t.Context(), c, sub); err != nil {
			t.Fatal(err)
		}
	}
	if err := EnsureTopic(t.Context(), c, "other"); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureSubscription(t.Context(), c, &pubsubpb.Subscription{Name: sub.Name, Topic: "projects/p/topics/other"}); err == nil {
		t.Error("EnsureSubscription accepted an existing subscription on another topic")
	}
	publish(t, c, "t", &pubsub.Message{Data: []byte("lost")})

	// "Restart": the server goes away and a fresh one takes its place.
	addr := srv.Addr
	srv.Close()
	fake2, err := Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake2.Close() })
	c2 := newClient(t, fake2)
	get := func() error {
		_, err := c2.SubscriptionAdminClient.GetSubscription(t.Context(), &pubsubpb.GetSubscriptionRequest{Subscription: sub.Name})
		return err
	}
	if get() == nil {
		t.Fatalf("subscription survived a restart (old %s, new %s)", addr, fake2.Addr)
	}
	if err := EnsureTopic(t.Context(), c2, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureSubscription(t.Context(), c2, sub); err != nil {
		t.Fatal(err)
	}
	if err := get(); err != nil {
		t.Errorf("subscription not re-created: %v", err)
	}
	if n := len(fake2.Fake().Messages()); n != 0 {
		t.Errorf("%d messages after restart, want 0 (unacked messages are lost)", n)
	}
}
