package pushbridge

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/jitpipeline/jit/internal/local/gcp/localoidc"
)

// Defaults and limits of a push subscription (docs/google-cloud.md §5).
const (
	DefaultMinBackoff          = 10 * time.Second
	DefaultMaxBackoff          = 600 * time.Second
	DefaultAckDeadline         = 10 * time.Second
	DefaultMaxDeliveryAttempts = 5
	DefaultConcurrency         = 4
	DefaultMaxOutstanding      = 1000
	DefaultReorderHold         = 100 * time.Millisecond

	maxBackoffLimit     = 600 * time.Second
	maxAckDeadline      = 600 * time.Second
	minDeliveryAttempts = 5
	maxDeliveryAttempts = 100
)

// Config configures a Bridge.
type Config struct {
	// Client is the real Pub/Sub client, aimed at pstest or the emulator.
	Client *pubsub.Client
	// HTTPClient makes the pushes; nil means a client that does not follow
	// redirects (a redirect is not a success code).
	HTTPClient *http.Client
	// Signer mints the OIDC tokens; required when a route has OIDC.
	Signer *localoidc.Signer
	// Logger receives one line per delivery outcome; nil means slog.Default().
	Logger *slog.Logger
	Routes []Route
}

// Route is one push subscription: what Eventarc sets up for a trigger.
type Route struct {
	// Topic and Subscription are IDs or full names in the client's project.
	Topic        string
	Subscription string
	// Filter, if set, is the subscription's filter, e.g.
	// `attributes.ce-type = "…"`: only matching messages are delivered
	// (Pub/Sub drops the others for this subscription).
	Filter string
	// Endpoint is the URL the CloudEvents are POSTed to.
	Endpoint string
	// OIDC, if set, adds Authorization: Bearer <Google-style ID token>.
	OIDC *OIDC
	// DeadLetterTopic, if set, receives a message after MaxDeliveryAttempts
	// failed attempts; without it a message is retried until Close.
	DeadLetterTopic string
	// MaxDeliveryAttempts is 5..100 as on Google Cloud; 0 means 5. Only
	// meaningful with a DeadLetterTopic.
	MaxDeliveryAttempts int
	// MinBackoff and MaxBackoff bound the exponential redelivery delay
	// (0..600 s, defaults 10 s and 600 s; tests use milliseconds).
	MinBackoff, MaxBackoff time.Duration
	// AckDeadline is also the push request timeout (docs/google-cloud.md §5). Default
	// 10 s, at most 600 s. Values under 10 s are for tests: the subscription
	// itself gets 10 s, the minimum Pub/Sub accepts.
	AckDeadline time.Duration
	// Concurrency bounds the pushes in flight (default 4).
	Concurrency int
	// MaxOutstanding bounds messages held by the bridge: in flight, waiting
	// in the reorder window or in backoff (default 1000).
	MaxOutstanding int
	// Chaos makes delivery less tidy, for tests of handlers.
	Chaos Chaos
}

// OIDC is a push subscription's token configuration.
type OIDC struct {
	ServiceAccountEmail string
	// Audience defaults to the endpoint URL, as on Google Cloud (docs/google-cloud.md §7).
	Audience string
}

// Chaos injects what at-least-once delivery allows but rarely shows, so
// handlers can be tested for idempotency and order independence. It is
// deterministic for a given Seed and arrival order.
type Chaos struct {
	// DuplicateEvery pushes every Nth successfully pushed message once more
	// before acknowledging it, as if the ack had been lost.
	DuplicateEvery int
	// DuplicateProbability does the same at random (seeded).
	DuplicateProbability float64
	// ReorderWindow holds up to this many messages and releases them in a
	// seeded random order; 0 or 1 disables it.
	ReorderWindow int
	// ReorderHold is how long a partly filled window waits before it is
	// released anyway (default 100 ms).
	ReorderHold time.Duration
	// Seed seeds the random choices.
	Seed uint64
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("client is required"))
	}
	if len(c.Routes) == 0 {
		errs = append(errs, errors.New("at least one route is required"))
	}
	seen := map[string]bool{}
	for i, r := range c.Routes {
		if err := r.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("route %d (%q): %w", i, r.Subscription, err))
		}
		if r.OIDC != nil && c.Signer == nil {
			errs = append(errs, fmt.Errorf("route %d (%q): OIDC needs a signer", i, r.Subscription))
		}
		if r.Subscription != "" && c.Client != nil {
			name := SubscriptionName(c.Client.Project(), r.Subscription)
			if seen[name] {
				errs = append(errs, fmt.Errorf("route %d: subscription %q has two routes", i, name))
			}
			seen[name] = true
		}
	}
	return errors.Join(errs...)
}

// Validate reports every problem with the route.
func (r Route) Validate() error {
	var errs []error
	if r.Topic == "" {
		errs = append(errs, errors.New("topic is required"))
	}
	if r.Subscription == "" {
		errs = append(errs, errors.New("subscription is required"))
	}
	if u, err := url.Parse(r.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("endpoint %q is not an absolute http(s) URL", r.Endpoint))
	}
	if r.OIDC != nil && r.OIDC.ServiceAccountEmail == "" {
		errs = append(errs, errors.New("OIDC service account email is required"))
	}
	if r.DeadLetterTopic == "" && r.MaxDeliveryAttempts != 0 {
		errs = append(errs, errors.New("max delivery attempts needs a dead-letter topic"))
	}
	if r.MaxDeliveryAttempts != 0 && (r.MaxDeliveryAttempts < minDeliveryAttempts || r.MaxDeliveryAttempts > maxDeliveryAttempts) {
		errs = append(errs, fmt.Errorf("max delivery attempts %d is outside %d..%d", r.MaxDeliveryAttempts, minDeliveryAttempts, maxDeliveryAttempts))
	}
	for name, d := range map[string]time.Duration{"min backoff": r.MinBackoff, "max backoff": r.MaxBackoff} {
		if d < 0 || d > maxBackoffLimit {
			errs = append(errs, fmt.Errorf("%s %v is outside 0..%v", name, d, maxBackoffLimit))
		}
	}
	if r.MinBackoff > 0 && r.MaxBackoff > 0 && r.MinBackoff > r.MaxBackoff {
		errs = append(errs, fmt.Errorf("min backoff %v exceeds max backoff %v", r.MinBackoff, r.MaxBackoff))
	}
	if r.AckDeadline < 0 || r.AckDeadline > maxAckDeadline {
		errs = append(errs, fmt.Errorf("ack deadline %v is outside 0..%v", r.AckDeadline, maxAckDeadline))
	}
	if r.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("concurrency %d is negative", r.Concurrency))
	}
	if r.MaxOutstanding < 0 {
		errs = append(errs, fmt.Errorf("max outstanding %d is negative", r.MaxOutstanding))
	}
	ch := r.Chaos
	if ch.DuplicateEvery < 0 {
		errs = append(errs, fmt.Errorf("duplicate every %d is negative", ch.DuplicateEvery))
	}
	if ch.DuplicateProbability < 0 || ch.DuplicateProbability > 1 {
		errs = append(errs, fmt.Errorf("duplicate probability %v is outside 0..1", ch.DuplicateProbability))
	}
	if ch.ReorderWindow < 0 {
		errs = append(errs, fmt.Errorf("reorder window %d is negative", ch.ReorderWindow))
	}
	if ch.ReorderHold < 0 {
		errs = append(errs, fmt.Errorf("reorder hold %v is negative", ch.ReorderHold))
	}
	return errors.Join(errs...)
}

// withDefaults fills in the defaults and full resource names.
func (r Route) withDefaults(project string) Route {
	r.Topic = TopicName(project, r.Topic)
	r.Subscription = SubscriptionName(project, r.Subscription)
	if r.DeadLetterTopic != "" {
		r.DeadLetterTopic = TopicName(project, r.DeadLetterTopic)
		if r.MaxDeliveryAttempts == 0 {
			r.MaxDeliveryAttempts = DefaultMaxDeliveryAttempts
		}
	}
	if r.MinBackoff == 0 {
		r.MinBackoff = DefaultMinBackoff
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = max(DefaultMaxBackoff, r.MinBackoff)
	}
	if r.AckDeadline == 0 {
		r.AckDeadline = DefaultAckDeadline
	}
	if r.Concurrency == 0 {
		r.Concurrency = DefaultConcurrency
	}
	if r.MaxOutstanding == 0 {
		r.MaxOutstanding = DefaultMaxOutstanding
	}
	if r.Chaos.ReorderHold == 0 {
		r.Chaos.ReorderHold = DefaultReorderHold
	}
	if r.OIDC != nil && r.OIDC.Audience == "" {
		o := *r.OIDC
		o.Audience = r.Endpoint
		r.OIDC = &o
	}
	return r
}

// backoff is the delay after the nth failed attempt: MinBackoff doubled per
// earlier failure, capped at MaxBackoff. Pub/Sub documents only the bounds;
// the doubling and the absence of jitter are this bridge's choice.
func (r Route) backoff(failures int) time.Duration {
	d := r.MinBackoff
	for i := 1; i < failures && d < r.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, r.MaxBackoff)
}
