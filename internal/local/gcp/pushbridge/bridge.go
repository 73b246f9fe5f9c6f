package pushbridge

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/jitpipeline/jit/internal/events/pubsubevent"
)

// MessagePublishedData is the CloudEvent data the bridge sends; see
// package pubsubevent, which function code should import instead.
type MessagePublishedData = pubsubevent.MessagePublishedData

// Attributes Pub/Sub adds to a message it forwards to a dead-letter topic.
// [2nd] several public clients and emulators use these names; the
// handling-failures page only says such attributes exist. VERIFY.
const (
	AttrDeadLetterDeliveryCount       = "CloudPubSubDeadLetterSourceDeliveryCount"
	AttrDeadLetterSubscription        = "CloudPubSubDeadLetterSourceSubscription"
	AttrDeadLetterSubscriptionProject = "CloudPubSubDeadLetterSourceSubscriptionProject"
	AttrDeadLetterTopicPublishTime    = "CloudPubSubDeadLetterSourceTopicPublishTime"
)

// receiveRetryDelay spaces restarts of a streaming pull that failed, for
// example because the Pub/Sub server went away.
const receiveRetryDelay = time.Second

// Stats counts what a route did. Pushes = Delivered + FailedAttempts.
type Stats struct {
	Pushes         int64 // HTTP requests made
	Delivered      int64 // pushes answered with a success code
	FailedAttempts int64 // pushes answered otherwise, timed out or not connected
	Duplicated     int64 // extra pushes made by Chaos duplication
	Acked          int64 // messages acknowledged after a successful push
	DeadLettered   int64 // messages published to the dead-letter topic and acknowledged
}

type counters struct {
	pushes, delivered, failed, duplicated, acked, deadLettered atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Pushes: c.pushes.Load(), Delivered: c.delivered.Load(), FailedAttempts: c.failed.Load(),
		Duplicated: c.duplicated.Load(), Acked: c.acked.Load(), DeadLettered: c.deadLettered.Load(),
	}
}

// Bridge pulls from Pub/Sub subscriptions and pushes each message to an
// HTTP endpoint as Eventarc does.
type Bridge struct {
	client *pubsub.Client
	http   *http.Client
	cfg    Config
	log    *slog.Logger
	routes []*route

	mu      sync.Mutex
	started bool
	closed  bool
	stop    chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New validates cfg and builds a bridge; Start starts it.
func New(cfg Config) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid push bridge config: %w", err)
	}
	b := &Bridge{client: cfg.Client, http: cfg.HTTPClient, cfg: cfg, log: cfg.Logger, stop: make(chan struct{})}
	if b.http == nil {
		b.http = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	for _, rc := range cfg.Routes {
		rc = rc.withDefaults(cfg.Client.Project())
		b.routes = append(b.routes, &route{
			b:        b,
			cfg:      rc,
			intake:   make(chan *delivery),
			work:     make(chan *delivery),
			failures: map[string]int{},
			rng:      rand.New(rand.NewPCG(rc.Chaos.Seed, rc.Chaos.Seed^0x9e3779b97f4a7c15)), //nolint:gosec // G404: chaos must replay from its seed; nothing drawn is a secret
		})
	}
	return b, nil
}

// Start creates the topics and subscriptions that are missing (so it is
// idempotent across restarts) and starts pulling and pushing. ctx bounds
// only the set-up; Close stops the bridge.
func (b *Bridge) Start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started || b.closed {
		return errors.New("push bridge already started or closed")
	}
	for _, r := range b.routes {
		if err := r.ensure(ctx); err != nil {
			return err
		}
	}
	recvCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.cancel = cancel
	b.started = true
	for _, r := range b.routes {
		r.start(recvCtx)
	}
	return nil
}

// Close stops pulling, returns the messages not yet pushed to Pub/Sub
// (nack), waits for pushes in flight to finish and be acknowledged, and
// stops. It waits at most about one AckDeadline.
func (b *Bridge) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	started := b.started
	b.mu.Unlock()
	close(b.stop)
	if !started {
		return nil
	}
	b.cancel()
	b.wg.Wait()
	for _, r := range b.routes {
		if r.dlt != nil {
			r.dlt.Stop()
		}
	}
	return nil
}

// Stats returns the counters of the route for a subscription ID or name.
func (b *Bridge) Stats(subscription string) Stats {
	name := SubscriptionName(b.client.Project(), subscription)
	for _, r := range b.routes {
		if r.cfg.Subscription == name {
			return r.stats.snapshot()
		}
	}
	return Stats{}
}

type route struct {
	b     *Bridge
	cfg   Route
	sub   *pubsub.Subscriber
	dlt   *pubsub.Publisher
	stats counters

	intake chan *delivery // from Receive callbacks to the dispatcher
	work   chan *delivery // from the dispatcher to the workers

	mu        sync.Mutex
	failures  map[string]int // failed attempts by message ID
	successes int
	rng       *rand.Rand
}

// delivery is one message received from Pub/Sub, on its way to a worker.
type delivery struct {
	m       *pubsub.Message
	pushed  chan struct{} // closed once a worker is done with it, or it was skipped
	ok      bool
	skipped bool
	attempt int
}

func (r *route) ensure(ctx context.Context) error {
	c := r.b.client
	if err := EnsureTopic(ctx, c, r.cfg.Topic); err != nil {
		return err
	}
	sub := &pubsubpb.Subscription{
		Name:               r.cfg.Subscription,
		Topic:              r.cfg.Topic,
		AckDeadlineSeconds: ackDeadlineSeconds(r.cfg.AckDeadline),
		Filter:             r.cfg.Filter,
	}
	if r.cfg.DeadLetterTopic != "" {
		if err := EnsureTopic(ctx, c, r.cfg.DeadLetterTopic); err != nil {
			return err
		}
		// The real policy is configured so the subscription looks as in
		// production and the server counts delivery attempts; the bridge
		// forwards itself (with the source attributes) before the server
		// would, and the server's forwarding is only a backstop.
		// Validate and withDefaults keep it in range; checked again here
		// so the conversion to int32 is visibly bounded.
		n := r.cfg.MaxDeliveryAttempts
		if n < minDeliveryAttempts || n > maxDeliveryAttempts {
			return fmt.Errorf("max delivery attempts %d is outside %d..%d", n, minDeliveryAttempts, maxDeliveryAttempts)
		}
		sub.DeadLetterPolicy = &pubsubpb.DeadLetterPolicy{
			DeadLetterTopic:     r.cfg.DeadLetterTopic,
			MaxDeliveryAttempts: int32(n),
		}
		r.dlt = c.Publisher(r.cfg.DeadLetterTopic)
	}
	if _, err := EnsureSubscription(ctx, c, sub); err != nil {
		return err
	}
	r.sub = c.Subscriber(r.cfg.Subscription)
	r.sub.ReceiveSettings.MaxOutstandingMessages = r.cfg.MaxOutstanding
	r.sub.ReceiveSettings.NumGoroutines = 1
	return nil
}

func ackDeadlineSeconds(d time.Duration) int32 {
	s := int32(math.Ceil(d.Seconds()))
	return min(max(s, 10), 600)
}

func (r *route) start(ctx context.Context) {
	wg := &r.b.wg
	wg.Add(2 + r.cfg.Concurrency)
	go func() { defer wg.Done(); r.receive(ctx) }()
	go func() { defer wg.Done(); r.dispatch() }()
	for range r.cfg.Concurrency {
		go func() { defer wg.Done(); r.worker() }()
	}
}

func (r *route) receive(ctx context.Context) {
	for {
		err := r.sub.Receive(ctx, r.onMessage)
		if ctx.Err() != nil {
			return
		}
		r.b.log.LogAttrs(ctx, slog.LevelError, "pubsub streaming pull failed",
			slog.String("subscription", r.cfg.Subscription), slog.Any("error", err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(receiveRetryDelay):
		}
	}
}

// onMessage runs in a Receive callback and returns once the message is
// acknowledged or handed back, so the client's flow control and graceful
// shutdown see it as outstanding until then.
func (r *route) onMessage(_ context.Context, m *pubsub.Message) {
	d := &delivery{m: m, pushed: make(chan struct{})}
	select {
	case r.intake <- d:
	case <-r.b.stop:
		m.Nack()
		return
	}
	<-d.pushed
	switch {
	case d.skipped:
		m.Nack()
	case d.ok:
		r.forget(m.ID)
		r.stats.acked.Add(1)
		m.Ack()
	case r.cfg.DeadLetterTopic != "" && d.attempt >= r.cfg.MaxDeliveryAttempts:
		r.deadLetter(d)
	default:
		r.nackAfter(m, r.cfg.backoff(d.attempt))
	}
}

// nackAfter holds the message for the backoff delay and then hands it back,
// so Pub/Sub redelivers it: pstest and the emulator redeliver at once and
// implement no RetryPolicy (docs/google-cloud.md §5). The client library keeps the
// lease extended meanwhile. Close cuts the wait short.
func (r *route) nackAfter(m *pubsub.Message, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.b.stop:
	}
	m.Nack()
}

func (r *route) deadLetter(d *delivery) {
	m := d.m
	attrs := make(map[string]string, len(m.Attributes)+4)
	for k, v := range m.Attributes {
		attrs[k] = v
	}
	project, id := splitName(r.cfg.Subscription)
	attrs[AttrDeadLetterDeliveryCount] = strconv.Itoa(d.attempt)
	attrs[AttrDeadLetterSubscription] = id
	attrs[AttrDeadLetterSubscriptionProject] = project
	attrs[AttrDeadLetterTopicPublishTime] = m.PublishTime.UTC().Format(time.RFC3339Nano)
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.AckDeadline+10*time.Second)
	defer cancel()
	if _, err := r.dlt.Publish(ctx, &pubsub.Message{Data: m.Data, Attributes: attrs}).Get(ctx); err != nil {
		r.b.log.LogAttrs(ctx, slog.LevelError, "pubsub dead-letter publish failed",
			slog.String("subscription", r.cfg.Subscription), slog.String("message_id", m.ID),
			slog.String("dead_letter_topic", r.cfg.DeadLetterTopic), slog.Any("error", err))
		r.nackAfter(m, r.cfg.backoff(d.attempt))
		return
	}
	r.forget(m.ID)
	r.stats.deadLettered.Add(1)
	r.b.log.LogAttrs(ctx, slog.LevelError, "pubsub message dead-lettered",
		slog.String("subscription", r.cfg.Subscription), slog.String("message_id", m.ID),
		slog.Int("attempt", d.attempt), slog.String("dead_letter_topic", r.cfg.DeadLetterTopic),
		slog.String("outcome", "dead_lettered"))
	m.Ack()
}

func splitName(full string) (project, id string) {
	parts := strings.Split(full, "/")
	if len(parts) != 4 {
		return "", full
	}
	return parts[1], parts[3]
}

// dispatch passes messages from the callbacks to the workers, through the
// reorder window when Chaos asks for one: the window fills until it holds
// ReorderWindow messages or ReorderHold has passed since its first one, and
// is then released as a whole in shuffled order. On Close it hands back
// what it holds.
func (r *route) dispatch() {
	window := r.cfg.Chaos.ReorderWindow
	var (
		buf, batch []*delivery
		held       bool
		timer      *time.Timer
		flushC     <-chan time.Time
	)
	stopTimer := func() {
		if timer != nil {
			timer.Stop()
		}
		flushC = nil
	}
	defer stopTimer()
	for {
		if len(batch) == 0 && len(buf) > 0 && (len(buf) >= window || held) {
			batch, buf, held = r.order(buf), nil, false
			stopTimer()
		}
		var (
			workC chan *delivery
			next  *delivery
		)
		if len(batch) > 0 {
			workC, next = r.work, batch[0]
		}
		select {
		case d := <-r.intake:
			buf = append(buf, d)
			if window > 1 && len(buf) == 1 {
				timer = time.NewTimer(r.cfg.Chaos.ReorderHold)
				flushC = timer.C
			}
		case workC <- next:
			batch = batch[1:]
		case <-flushC:
			flushC = nil
			held = true
		case <-r.b.stop:
			for _, d := range append(batch, buf...) {
				d.skipped = true
				close(d.pushed)
			}
			return
		}
	}
}

// order returns a released window in delivery order: as received without
// reordering, else shuffled with the seeded RNG after sorting by publish
// time and ID, so the result does not depend on goroutine scheduling.
func (r *route) order(buf []*delivery) []*delivery {
	if r.cfg.Chaos.ReorderWindow <= 1 {
		return buf
	}
	slices.SortFunc(buf, func(a, b *delivery) int {
		return cmp.Or(a.m.PublishTime.Compare(b.m.PublishTime), cmp.Compare(a.m.ID, b.m.ID))
	})
	r.mu.Lock()
	r.rng.Shuffle(len(buf), func(i, j int) { buf[i], buf[j] = buf[j], buf[i] })
	r.mu.Unlock()
	return buf
}

func (r *route) worker() {
	for {
		select {
		case d := <-r.work:
			r.handle(d)
		case <-r.b.stop:
			return
		}
	}
}

// handle pushes one message (twice if Chaos duplicates it) and records the
// outcome for the callback to act on.
func (r *route) handle(d *delivery) {
	defer close(d.pushed)
	d.attempt = r.attempt(d.m)
	d.ok = r.push(d.m, d.attempt)
	if d.ok && r.duplicate() {
		r.stats.duplicated.Add(1)
		d.ok = r.push(d.m, d.attempt)
	}
	if !d.ok {
		r.mu.Lock()
		r.failures[d.m.ID]++
		r.mu.Unlock()
	}
}

// attempt numbers a delivery: the server's count when it keeps one (a
// subscription with a dead-letter policy), else 1 + failures seen here.
func (r *route) attempt(m *pubsub.Message) int {
	r.mu.Lock()
	n := r.failures[m.ID] + 1
	r.mu.Unlock()
	if m.DeliveryAttempt != nil {
		n = max(n, *m.DeliveryAttempt)
	}
	return n
}

func (r *route) forget(id string) {
	r.mu.Lock()
	delete(r.failures, id)
	r.mu.Unlock()
}

func (r *route) duplicate() bool {
	c := r.cfg.Chaos
	r.mu.Lock()
	defer r.mu.Unlock()
	r.successes++
	if c.DuplicateEvery > 0 && r.successes%c.DuplicateEvery == 0 {
		return true
	}
	return c.DuplicateProbability > 0 && r.rng.Float64() < c.DuplicateProbability
}

// successCodes are the responses that acknowledge a push: "200, 201, 202,
// 204, or 102" ([doc] https://cloud.google.com/pubsub/docs/push); anything
// else, 203 included, is a failure. Go's client never returns 102 as final.
func successCode(code int) bool {
	switch code {
	case http.StatusOK, http.StatusCreated, http.StatusAccepted, http.StatusNoContent, http.StatusProcessing:
		return true
	}
	return false
}

// push POSTs the message as a binary-mode CloudEvent and logs the outcome.
func (r *route) push(m *pubsub.Message, attempt int) bool {
	r.stats.pushes.Add(1)
	start := time.Now()
	code, err := r.post(m)
	ok := err == nil && successCode(code)
	if ok {
		r.stats.delivered.Add(1)
	} else {
		r.stats.failed.Add(1)
		if err == nil {
			err = fmt.Errorf("endpoint answered %d", code)
		}
	}
	level, outcome := slog.LevelInfo, "delivered"
	attrs := []slog.Attr{
		slog.String("subscription", r.cfg.Subscription),
		slog.String("message_id", m.ID),
		slog.Int("attempt", attempt),
		// httpRequest is the Cloud Logging LogEntry field for a request.
		slog.Group("httpRequest",
			slog.String("requestMethod", http.MethodPost),
			slog.String("requestUrl", r.cfg.Endpoint),
			slog.Int("status", code),
			slog.String("latency", fmt.Sprintf("%.6fs", time.Since(start).Seconds()))),
	}
	if !ok {
		level, outcome = slog.LevelWarn, "failed"
		attrs = append(attrs, slog.Any("error", err))
	}
	attrs = append(attrs, slog.String("outcome", outcome))
	r.b.log.LogAttrs(context.Background(), level, "pubsub push "+outcome, attrs...)
	return ok
}

func (r *route) post(m *pubsub.Message) (int, error) {
	body, err := json.Marshal(MessagePublishedData{
		Subscription: r.cfg.Subscription,
		Message: pubsubevent.Message{
			Data:        m.Data,
			Attributes:  m.Attributes,
			MessageID:   m.ID,
			PublishTime: m.PublishTime.UTC(),
			OrderingKey: m.OrderingKey,
		},
	})
	if err != nil {
		return 0, fmt.Errorf("failed to encode event: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.AckDeadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.Endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("failed to build request: %w", err)
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("ce-specversion", "1.0")
	h.Set("ce-type", pubsubevent.EventType)
	h.Set("ce-source", pubsubevent.Source(r.cfg.Topic))
	h.Set("ce-id", m.ID)
	h.Set("ce-time", m.PublishTime.UTC().Format(time.RFC3339Nano))
	if o := r.cfg.OIDC; o != nil {
		tok, err := r.b.cfg.Signer.IDToken(o.ServiceAccountEmail, o.Audience)
		if err != nil {
			return 0, fmt.Errorf("failed to mint ID token: %w", err)
		}
		h.Set("Authorization", "Bearer "+tok)
	}
	resp, err := r.b.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("failed to push: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, nil
}
