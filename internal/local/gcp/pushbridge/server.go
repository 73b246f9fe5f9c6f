package pushbridge

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jitpipeline/jit/internal/local/gcp/loopback"
)

// EmulatorHostEnv names the variable that points Google's client libraries
// at a Pub/Sub emulator (docs/google-cloud.md §5).
const EmulatorHostEnv = "PUBSUB_EMULATOR_HOST"

// Server is a local Pub/Sub endpoint: the client library's pstest fake,
// in this process, or Google's emulator, running elsewhere. Both keep
// everything in memory (see the package documentation).
type Server struct {
	// Addr is host:port of the gRPC endpoint.
	Addr string
	fake *pstest.Server

	closeOnce sync.Once
	closeErr  error
}

// Start returns a Pub/Sub endpoint. With emulatorHost set it uses the
// emulator there and starts nothing; otherwise it starts a pstest server on
// 127.0.0.1.
func Start(emulatorHost string) (*Server, error) {
	if emulatorHost != "" {
		return &Server{Addr: emulatorHost}, nil
	}
	fake := pstest.NewServerWithAddress("127.0.0.1:0")
	return &Server{Addr: fake.Addr, fake: fake}, nil
}

// StartFromEnv is Start with the emulator named by PUBSUB_EMULATOR_HOST,
// as the client libraries themselves interpret it.
func StartFromEnv() (*Server, error) { return Start(os.Getenv(EmulatorHostEnv)) }

// Fake is the in-process pstest server, or nil when using the emulator.
func (s *Server) Fake() *pstest.Server { return s.fake }

// ClientOptions aim a Google client library at this endpoint: plaintext,
// no credentials.
func (s *Server) ClientOptions() []option.ClientOption { return loopback.ClientOptions(s.Addr) }

// NewClient opens the real Pub/Sub v2 client on this endpoint.
func (s *Server) NewClient(ctx context.Context, project string) (*pubsub.Client, error) {
	c, err := pubsub.NewClient(ctx, project, s.ClientOptions()...)
	if err != nil {
		return nil, fmt.Errorf("failed to create pubsub client for %s: %w", s.Addr, err)
	}
	return c, nil
}

// Close stops the pstest server (once; pstest itself panics on a second
// Close). It does nothing for an emulator, which belongs to whoever
// started it.
func (s *Server) Close() error {
	if s.fake == nil {
		return nil
	}
	s.closeOnce.Do(func() {
		if err := s.fake.Close(); err != nil {
			s.closeErr = fmt.Errorf("failed to close pstest server: %w", err)
		}
	})
	return s.closeErr
}

// TopicName returns the full name projects/P/topics/T for a topic ID or
// full name.
func TopicName(project, nameOrID string) string { return fullName(project, "topics", nameOrID) }

// SubscriptionName returns the full name projects/P/subscriptions/S for a
// subscription ID or full name.
func SubscriptionName(project, nameOrID string) string {
	return fullName(project, "subscriptions", nameOrID)
}

func fullName(project, kind, nameOrID string) string {
	if strings.HasPrefix(nameOrID, "projects/") {
		return nameOrID
	}
	return "projects/" + project + "/" + kind + "/" + nameOrID
}

// EnsureTopic creates the topic unless it exists, so start-up can run
// again after a restart of the bridge or of the Pub/Sub server.
func EnsureTopic(ctx context.Context, c *pubsub.Client, nameOrID string) error {
	name := TopicName(c.Project(), nameOrID)
	_, err := c.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: name})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("failed to create topic %s: %w", name, err)
	}
	return nil
}

// EnsureSubscription creates the subscription unless it exists. An existing
// subscription is kept as it is, except that one attached to another topic
// is an error: silently reading the wrong topic is worse than failing.
func EnsureSubscription(ctx context.Context, c *pubsub.Client, sub *pubsubpb.Subscription) (*pubsubpb.Subscription, error) {
	got, err := c.SubscriptionAdminClient.CreateSubscription(ctx, sub)
	if err == nil {
		return got, nil
	}
	if status.Code(err) != codes.AlreadyExists {
		return nil, fmt.Errorf("failed to create subscription %s: %w", sub.GetName(), err)
	}
	got, err = c.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: sub.GetName()})
	if err != nil {
		return nil, fmt.Errorf("failed to get subscription %s: %w", sub.GetName(), err)
	}
	if got.GetTopic() != sub.GetTopic() {
		return nil, fmt.Errorf("subscription %q exists on topic %q, want %q", sub.GetName(), got.GetTopic(), sub.GetTopic())
	}
	return got, nil
}
